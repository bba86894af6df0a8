# -*- test-case-name: tests.unit.test_cli -*-
"""
C{llmedge}: the operator's tool beside the daemon (C{twistd llmedge}).

It makes and hashes API keys, so plain keys need not sit in configuration
files, and checks a configuration exactly as the daemon would load it, so
a mistake is found before a restart rather than by one. Every user error
is one line on standard error and an exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from typing import IO

from llmedge import __version__
from llmedge.config import ConfigError, load
from llmedge.keys import KeyRing, generate_key, hash_key
from llmedge.describe import describe

#: Exit statuses: a configuration that does not load, and a usage error.
BAD_CONFIG, USAGE = 1, 2


class _UsageError(Exception):
    """
    The command line asked for something impossible; C{str()} is the line.
    """


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmedge",
        description="Operator tools for llmedge; the daemon itself runs as 'twistd llmedge'.",
    )
    parser.add_argument("--version", action="version", version=f"llmedge {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    hashing = commands.add_parser(
        "hash-key",
        help="print the stored form (sha256:<hex>) of a key",
        description="Print the stored form of KEY for API_KEYS or [[auth.keys]]. "
        "Without KEY, read it from standard input, which keeps it out of "
        "shell history and the process list.",
    )
    hashing.add_argument("key", nargs="?", metavar="KEY")
    commands.add_parser(
        "generate-key",
        help="make a new random key and print it with its stored form",
        description="Print a new key for a client and the stored form for the configuration.",
    )
    checking = commands.add_parser(
        "check-config",
        help="load the configuration as the daemon would and print it",
        description="Load the configuration as 'twistd llmedge' would (the file, then "
        "the environment) and print the effective settings, secrets redacted.",
    )
    checking.add_argument(
        "-c", "--config", metavar="FILE",
        help="TOML configuration file (default: $LLMEDGE_CONFIG, else none)",
    )
    return parser


def main(
    argv: Sequence[str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    randbytes: Callable[[int], bytes] = secrets.token_bytes,
) -> int:
    """
    Run one command and return the exit status.

    The streams default to C{sys}'s at call time, not import time, so
    redirections made after import are honoured.
    """
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    environ = os.environ if environ is None else environ
    try:
        with redirect_stdout(stdout), redirect_stderr(stderr):
            args = _parser().parse_args(argv)
    except SystemExit as e:
        # argparse has printed usage, help or the version to our streams.
        return e.code if isinstance(e.code, int) else USAGE
    try:
        if args.command == "hash-key":
            return _hash_key(args.key, stdin, stdout, stderr)
        if args.command == "generate-key":
            return _generate_key(stdout, stderr, randbytes)
        return _check_config(args.config, environ, stdout)
    except _UsageError as e:
        print(f"llmedge: {args.command}: {e}", file=stderr)
        return USAGE
    except ConfigError as e:
        print(f"llmedge: {e}", file=stderr)
        return BAD_CONFIG
    except KeyboardInterrupt:
        return 130


def _hash_key(key: str | None, stdin: IO[str], stdout: IO[str], stderr: IO[str]) -> int:
    if key is None:
        key = _read_key(stdin, stderr)
    if not key:
        raise _UsageError("empty key")
    try:
        print(hash_key(key), file=stdout)
    except ValueError as e:
        raise _UsageError(f"key {e}") from None
    return 0


def _read_key(stdin: IO[str], stderr: IO[str]) -> str:
    """
    One line of standard input without its line ending; at a terminal, a
    prompt that does not echo the key.
    """
    try:
        if stdin.isatty():
            return getpass.getpass("key: ", stream=stderr)
        return stdin.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise _UsageError("key on standard input is not valid UTF-8") from None
    except EOFError:
        return ""


def _generate_key(
    stdout: IO[str], stderr: IO[str], randbytes: Callable[[int], bytes]
) -> int:
    key = generate_key(randbytes)
    print(f"key: {key}", file=stdout)
    print(f"stored: {hash_key(key)}", file=stdout)
    # The hint goes to stderr so standard output stays two parseable lines.
    print(
        "Give the key to the client; put the stored form in API_KEYS or in "
        "[[auth.keys]] as key = \"sha256:...\".",
        file=stderr,
    )
    return 0


def _check_config(path: str | None, environ: Mapping[str, str], stdout: IO[str]) -> int:
    """
    Load the configuration as L{llmedge.tap.makeService} does, build the
    key ring as the daemon will, and print what they came to.
    """
    origin = "--config"
    if not path:
        path, origin = environ.get("LLMEDGE_CONFIG") or None, "LLMEDGE_CONFIG"
    config = load(environ, path, (), origin)
    keys = KeyRing.from_config(config)
    for line in describe(config, keys):
        print(line, file=stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
