# -*- test-case-name: tests.unit.test_tap -*-
"""
C{twistd llmedge}: command-line options and the service they make.

Options only collect what was typed; L{makeService} merges them with the
TOML file and the environment (L{llmedge.config.load}) and builds the
service. A bad setting ends start-up with one line naming it, on standard
error, and a non-zero exit status: no traceback, no usage text.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from twisted.application.service import IService
from twisted.python import usage

from llmedge import __version__
from llmedge.config import ConfigError, load
from llmedge.settings import integer
from llmedge.observe.logging import make_observer


class Options(usage.Options):
    synopsis = "[--listen ENDPOINT]... [--config FILE]"
    longdesc = (
        "Serve the OpenAI API on each --listen endpoint, authenticating, "
        "limiting and observing requests and forwarding them to the configured "
        "providers (with none configured, an embedded mock provider answers). "
        "Settings come from defaults < the TOML file < the environment < these "
        "options; see README.md for every setting."
    )
    optParameters = [
        [
            "config",
            "c",
            None,
            "TOML configuration file (default: $LLMEDGE_CONFIG, else none).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["workers"] = None

    def opt_listen(self, endpoint: str) -> None:
        """
        Listen on a Twisted endpoint string; repeat for several, e.g.
        tcp:8080, ssl:8443:privateKey=key.pem:certKey=cert.pem,
        unix:/run/llmedge/llmedge.sock, systemd:domain=INET:index=0
        (default: tcp on $SERVER_ADDRESS, 0.0.0.0:8080).
        """
        self["listen"].append(endpoint)

    def opt_workers(self, count: str) -> None:
        """
        Serve from this many worker processes sharing the listeners, to use
        that many cores (default: $WORKERS, else 0: serve in this process).
        """
        try:
            self["workers"] = integer(0, 64)(count)
        except ValueError as e:
            raise usage.UsageError(f"--workers={count}: {e}") from None

    def opt_version(self) -> None:
        """
        Print llmedge's version and exit.
        """
        print(f"llmedge {__version__}")
        sys.exit(0)


def makeService(
    options: Options, reactor=None, environ: Mapping[str, str] | None = None
) -> IService:
    """
    Build the llmedge service for C{twistd}, or exit with one line naming
    the bad setting.
    """
    if reactor is None:
        from twisted.internet import reactor
    from llmedge.service import EdgeService

    environ = os.environ if environ is None else environ
    path, origin = options["config"], "--config"
    if not path:
        path, origin = environ.get("LLMEDGE_CONFIG") or None, "LLMEDGE_CONFIG"
    try:
        config = load(environ, path, options["listen"], origin)
        service = EdgeService(config, reactor)
    except ConfigError as e:
        raise SystemExit(f"llmedge: {e}") from None
    service.config_source = (environ, path, options["listen"], origin)
    workers = options["workers"]
    if workers is None:
        workers = config["server.workers"]
    if workers:
        from llmedge.supervisor import Supervisor

        # The service built above is never started: building it checked
        # every setting as each worker will.
        logfile = _twistd_logfile(options)
        if logfile in ("", "-"):
            logfile = None
        service = Supervisor(service, reactor, workers, path, origin, environ,
                             log_path=logfile and os.path.abspath(logfile))
    service.log_observer = make_observer(
        config["log.level"], _twistd_logfile(options), _open_logfile
    )
    return service


def _twistd_logfile(options: Options) -> str | None:
    """
    Where twistd was told to log: its C{--logfile}, or C{twistd.log} when it
    daemonizes without one (twistd's own rule); L{None} for standard output.
    """
    twistd = getattr(options, "parent", None)
    if twistd is None:
        return None
    logfile = twistd.get("logfile")
    if logfile is None and not twistd.get("nodaemon"):
        return "twistd.log"
    return logfile


def _open_logfile(path: str):
    """
    twistd's C{--logfile}, opened for appending: every line is one write
    at the end of the file (C{O_APPEND}), so workers appending to the same
    file never overwrite each other's lines, and after logrotate's
    C{copytruncate} writing resumes at the new end instead of leaving a
    hole. No size-based rotation: logrotate (or journald) owns that.
    """
    return open(path, "a", encoding="utf-8")
