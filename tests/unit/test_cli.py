"""
C{llmedge}, the operator's command: hashing and generating keys, and
checking a configuration as the daemon would load it.
"""

import hashlib
import io
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmedge import __version__
from llmedge.cli import main
from llmedge.keys import hash_key
from llmedge.settings import SETTINGS

TEST_STORED = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@dataclass
class Run:
    status: int
    out: str
    err: str


def run(*argv: str, stdin: str = "", environ=None, **kwargs) -> Run:
    out, err = io.StringIO(), io.StringIO()
    status = main(
        list(argv), stdin=io.StringIO(stdin), stdout=out, stderr=err,
        environ={} if environ is None else environ, **kwargs,
    )
    return Run(status, out.getvalue(), err.getvalue())


# hash-key


def test_hash_key_prints_the_stored_form_of_its_argument():
    assert run("hash-key", "test") == Run(0, TEST_STORED + "\n", "")


def test_hash_key_without_argument_reads_the_key_from_stdin():
    assert run("hash-key", stdin="test\n") == Run(0, TEST_STORED + "\n", "")


def test_hash_key_reads_only_the_first_line_of_stdin():
    assert run("hash-key", stdin="test\r\nmore\n").out == TEST_STORED + "\n"


def test_hash_key_keeps_spaces_inside_the_line():
    assert run("hash-key", stdin=" test \n").out == hash_key(" test ") + "\n"


@pytest.mark.parametrize("argv,stdin", [(["hash-key", ""], ""), (["hash-key"], ""),
                                        (["hash-key"], "\n")])
def test_hash_key_of_nothing_is_a_one_line_usage_error(argv, stdin):
    assert run(*argv, stdin=stdin) == Run(2, "", "llmedge: hash-key: empty key\n")


def test_hash_key_of_undecodable_argument_hashes_its_bytes():
    expected = "sha256:" + hashlib.sha256(b"\xff").hexdigest()
    assert run("hash-key", "\udcff").out == expected + "\n"


# generate-key


def test_generate_key_prints_the_key_and_its_stored_form():
    result = run("generate-key")
    key_line, stored_line = result.out.splitlines()
    key = key_line.removeprefix("key: ")
    assert key.startswith("sk-llmedge-") and len(key) == len("sk-llmedge-") + 43
    assert stored_line == f"stored: {hash_key(key)}"


def test_generate_key_uses_the_randomness_it_is_given():
    out = run("generate-key", randbytes=bytes).out
    assert out.splitlines()[0] == "key: sk-llmedge-" + "A" * 43


def test_generate_key_hints_where_each_form_goes_on_stderr():
    err = run("generate-key").err
    assert "client" in err and "API_KEYS" in err and "[[auth.keys]]" in err


# check-config: success


def test_check_config_lists_every_setting_in_order():
    result = run("check-config")
    names = [line.split(" = ")[0] for line in result.out.splitlines() if " = " in line]
    assert (result.status, names) == (0, [s.name for s in SETTINGS])


def test_check_config_shows_values_as_toml():
    out = run("check-config", environ={"SERVER_ADDRESS": "[::1]:9000"}).out.splitlines()
    assert 'server.address = "[::1]:9000"' in out
    assert "auth.enabled = true" in out
    assert "server.timeout_seconds = 30.0" in out


def test_check_config_counts_api_keys_and_never_shows_them():
    result = run("check-config", environ={"API_KEYS": f"sk-secret-1,{TEST_STORED}"})
    assert "auth.api_keys = <2 keys>" in result.out.splitlines()
    assert "sk-secret-1" not in result.out and TEST_STORED not in result.out


def test_check_config_masks_a_password_in_a_url():
    result = run("check-config", environ={"REDIS_URL": "redis://u:hunter2@redis:6379/0"})
    assert 'rate_limit.redis_url = "redis://u:***@redis:6379/0"' in result.out.splitlines()


def test_check_config_lists_listeners_providers_models_and_key_ids(toml):
    path = toml(
        '[server]\nlisten = ["tcp:8081", "unix:/run/llmedge.sock"]\n'
        '[providers.fast]\nkind = "mock"\n'
        '[models."gpt-4o"]\ntargets = [{ provider = "fast", model = "m1" },'
        ' { provider = "mock", model = "m2" }]\n'
        f'[[auth.keys]]\nname = "ci"\nkey = "{TEST_STORED}"\nrpm = 10\n'
    )
    lines = run("check-config", "--config", path).out.splitlines()
    assert lines[0] == f"# file: {path}"
    assert lines[len(SETTINGS) + 1:] == [
        "listen tcp:8081 (from server.listen)",
        "listen unix:/run/llmedge.sock (from server.listen)",
        "provider mock: kind mock",
        "provider fast: kind mock",
        "model gpt-4o -> fast/m1, mock/m2",
        "key ci: rpm 10",
    ]


def test_check_config_reads_the_file_named_by_LLMEDGE_CONFIG(toml):
    path = toml("[rate_limit]\nrpm = 7\n")
    out = run("check-config", environ={"LLMEDGE_CONFIG": path}).out.splitlines()
    assert "rate_limit.rpm = 7" in out


def test_check_config_option_overrides_LLMEDGE_CONFIG(toml, tmp_path):
    path = toml("[rate_limit]\nrpm = 7\n")
    environ = {"LLMEDGE_CONFIG": str(tmp_path / "absent.toml")}
    assert run("check-config", "-c", path, environ=environ).status == 0


def test_check_config_environment_overrides_the_file(toml):
    path = toml("[rate_limit]\nrpm = 7\n")
    out = run("check-config", "-c", path, environ={"RATE_LIMIT_RPM": "9"}).out
    assert "rate_limit.rpm = 9" in out.splitlines()


# check-config: failure


def test_check_config_bad_setting_is_one_stderr_line_naming_it():
    result = run("check-config", environ={"RATE_LIMIT_RPM": "0"})
    assert result == Run(1, "", "llmedge: RATE_LIMIT_RPM='0': must be at least 1\n")


def test_check_config_names_the_origin_of_an_unreadable_file(tmp_path):
    absent = str(tmp_path / "absent.toml")
    err = run("check-config", environ={"LLMEDGE_CONFIG": absent}).err
    assert err.startswith(f"llmedge: LLMEDGE_CONFIG={absent}: cannot read")


def test_check_config_bad_key_is_named_without_echoing_it():
    result = run("check-config", environ={"API_KEYS": "sk-ok,sha256:sk-secret-typo"})
    assert result == Run(
        1, "", "llmedge: API_KEYS[1]: sha256: must be followed by 64 hexadecimal digits\n"
    )


def test_check_config_duplicate_key_is_refused():
    result = run("check-config", environ={"API_KEYS": f"test,{TEST_STORED}"})
    assert result == Run(1, "", "llmedge: API_KEYS[1]: the same key as API_KEYS[0]\n")


# The command line itself


def test_version_is_printed_to_stdout():
    assert run("--version") == Run(0, f"llmedge {__version__}\n", "")


def test_missing_command_is_a_usage_error_without_traceback():
    result = run()
    assert result.status == 2 and "usage: llmedge" in result.err
    assert "Traceback" not in result.err


def test_unknown_command_is_a_usage_error():
    assert run("rotate-keys").status == 2


def test_help_exits_zero_on_stdout():
    result = run("check-config", "--help")
    assert result.status == 0 and "--config" in result.out


# Installed entry points


def test_console_script_hashes_a_key():
    script = Path(sys.executable).with_name("llmedge")
    done = subprocess.run([script, "hash-key", "test"], capture_output=True, text=True)
    assert (done.returncode, done.stdout, done.stderr) == (0, TEST_STORED + "\n", "")


def test_module_runs_as_a_script_reading_stdin():
    done = subprocess.run(
        [sys.executable, "-m", "llmedge.cli", "hash-key"],
        input="test\n", capture_output=True, text=True,
    )
    assert (done.returncode, done.stdout) == (0, TEST_STORED + "\n")
