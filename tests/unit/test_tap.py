"""
C{twistd llmedge}: its options, the service they make, and the plugin that
makes C{twistd} find it.
"""

import pytest
from twisted.application.service import IService, IServiceMaker, MultiService
from twisted.internet.testing import MemoryReactorClock
from twisted.plugin import getPlugins
from twisted.python import usage

from llmedge.service import Listener
from llmedge.tap import Options, makeService


def parse(*argv: str) -> Options:
    options = Options()
    options.parseOptions(list(argv))
    return options


def make(argv=(), environ=None):
    environ = {"AUTH_ENABLED": "false", **(environ or {})}
    return makeService(parse(*argv), reactor=MemoryReactorClock(), environ=environ)


def exit_message(argv=(), environ=None) -> str:
    with pytest.raises(SystemExit) as caught:
        make(argv, environ)
    return caught.value.code


# Options


def test_listen_defaults_to_empty():
    assert parse()["listen"] == []


def test_listen_is_repeatable_and_keeps_order():
    options = parse("--listen", "tcp:8081", "--listen=unix:/s", "--listen", "tcp:8080")
    assert options["listen"] == ["tcp:8081", "unix:/s", "tcp:8080"]


def test_config_defaults_to_none():
    assert parse()["config"] is None


@pytest.mark.parametrize("argv", [["--config", "a.toml"], ["--config=a.toml"], ["-c", "a.toml"]])
def test_config_long_and_short_forms(argv):
    assert parse(*argv)["config"] == "a.toml"


def test_unknown_option_is_a_usage_error():
    with pytest.raises(usage.UsageError):
        parse("--bogus")


def test_options_do_not_share_a_listen_list():
    parse("--listen", "tcp:1")
    assert Options()["listen"] == []


@pytest.mark.parametrize("option", ["--listen", "--config"])
def test_help_mentions_option(option):
    assert option in str(Options())


# makeService


def test_service_is_a_multiservice_of_listeners():
    service = make(["--listen", "tcp:8081"])
    assert IService.providedBy(service)
    assert isinstance(service, MultiService)
    assert [type(child) for child in service.listeners] == [Listener]
    assert all(child in service for child in service.listeners)


def test_one_listener_per_listen_option_in_order():
    service = make(["--listen", "tcp:8081", "--listen", "tcp:8082"])
    assert [child.description for child in service.listeners] == ["tcp:8081", "tcp:8082"]


def test_without_listen_uses_server_address_from_environ():
    service = make(environ={"SERVER_ADDRESS": "127.0.0.1:9001"})
    assert [child.description for child in service.listeners] == ["tcp:9001:interface=127.0.0.1"]


def test_settings_come_from_the_passed_environ():
    service = make(environ={"MAX_REQUEST_SIZE": "1234"})
    assert service.config.max_request_size == 1234


def test_bad_setting_exits_with_one_line_naming_it():
    message = exit_message(environ={"MAX_REQUEST_SIZE": "abc"})
    assert isinstance(message, str)
    assert message.startswith("llmedge: ")
    assert "MAX_REQUEST_SIZE" in message
    assert "\n" not in message


def test_bad_endpoint_exits_naming_listen():
    message = exit_message(["--listen", "bogus:1"])
    assert message.startswith("llmedge: --listen=bogus:1")
    assert "\n" not in message


def test_missing_config_file_exits_naming_the_path(tmp_path):
    path = str(tmp_path / "absent.toml")
    message = exit_message(["--config", path])
    assert message.startswith("llmedge: ")
    assert path in message


def test_llmedge_config_from_environ_is_read_without_config_option(tmp_path):
    path = tmp_path / "llmedge.toml"
    path.write_text('[server]\nlisten = ["tcp:7001"]\n')
    service = make(environ={"LLMEDGE_CONFIG": str(path)})
    assert service.config.source == str(path)
    assert [child.description for child in service.listeners] == ["tcp:7001"]


def test_config_option_beats_llmedge_config(tmp_path):
    chosen = tmp_path / "chosen.toml"
    chosen.write_text('[server]\nlisten = ["tcp:7002"]\n')
    environ = {"LLMEDGE_CONFIG": str(tmp_path / "absent.toml")}
    service = make(["--config", str(chosen)], environ)
    assert [child.description for child in service.listeners] == ["tcp:7002"]


# The twistd plugin


def test_plugin_names_tap_module_as_llmedge():
    from twisted.plugins import llmedge_plugin

    maker = llmedge_plugin.llmedge
    assert IServiceMaker.providedBy(maker)
    assert (maker.tapname, maker.module) == ("llmedge", "llmedge.tap")


def test_twistd_finds_the_plugin():
    makers = [p for p in getPlugins(IServiceMaker) if p.tapname == "llmedge"]
    assert [m.module for m in makers] == ["llmedge.tap"]


def test_plugin_options_are_llmedges_options():
    from twisted.plugins import llmedge_plugin

    assert llmedge_plugin.llmedge.options is Options
