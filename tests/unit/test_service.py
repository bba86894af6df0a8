"""
L{EdgeService}: from a configuration to listening ports, bound in
C{privilegedStartService}, and back.
"""

import sys

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import fail, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock

from llmedge.config import ConfigError, load
from llmedge.service import EdgeService, Listener, describe_address


class RecordingPort:
    def __init__(self, address):
        self.address = address
        self.stopped = False

    def getHost(self):
        return self.address

    def stopListening(self):
        self.stopped = True
        return succeed(None)


class PortRecordingReactor(MemoryReactorClock):
    """
    A memory reactor whose ports remember being stopped.
    """

    def __init__(self):
        super().__init__()
        self.ports = []

    def listenTCP(self, port, factory, backlog=50, interface=""):
        super().listenTCP(port, factory, backlog, interface)
        self.ports.append(RecordingPort(IPv4Address("TCP", interface or "0.0.0.0", port)))
        return self.ports[-1]


class RefusingReactor(MemoryReactorClock):
    def listenTCP(self, port, factory, backlog=50, interface=""):
        raise CannotListenError(interface, port, OSError(98, "Address already in use"))


class FailingEndpoint:
    def listen(self, factory):
        return fail(CannotListenError("127.0.0.1", 80, OSError(13, "Permission denied")))


def service(listen, reactor=None):
    reactor = MemoryReactorClock() if reactor is None else reactor
    return EdgeService(load({"AUTH_ENABLED": "false"}, None, listen), reactor), reactor


def test_nothing_listens_before_privileged_start():
    _, reactor = service(["tcp:8081"])
    assert reactor.tcpServers == []


def test_privileged_start_listens_on_every_endpoint():
    edge, reactor = service(["tcp:8081:interface=127.0.0.1", "tcp:8082"])
    edge.privilegedStartService()
    assert [(port, interface) for port, _, _, interface in reactor.tcpServers] == [
        (8081, "127.0.0.1"),
        (8082, ""),
    ]


def test_every_listener_serves_the_one_site():
    edge, reactor = service(["tcp:8081", "tcp:8082"])
    edge.privilegedStartService()
    assert [factory for _, factory, _, _ in reactor.tcpServers] == [edge.site, edge.site]


def test_site_enforces_the_configured_body_limit():
    edge = EdgeService(load({"MAX_REQUEST_SIZE": "99", "AUTH_ENABLED": "false"}, None, ["tcp:0"]), MemoryReactorClock())
    assert edge.site.max_request_size == 99


def test_start_does_not_listen_again():
    edge, reactor = service(["tcp:8081"])
    edge.privilegedStartService()
    edge.startService()
    assert len(reactor.tcpServers) == 1


def test_stop_stops_every_port():
    edge, reactor = service(["tcp:8081", "tcp:8082"], PortRecordingReactor())
    edge.privilegedStartService()
    edge.startService()
    stopped = []
    edge.stopService().addCallback(stopped.append)
    assert stopped
    assert [port.stopped for port in reactor.ports] == [True, True]
    assert [listener.port for listener in edge.listeners] == [None, None]


def test_stop_of_a_listener_that_never_listened_succeeds():
    listener = Listener(FailingEndpoint(), None, "tcp:80")
    done = []
    listener.stopService().addCallback(done.append)
    assert done == [None]


def test_listener_remembers_its_port():
    edge, reactor = service(["tcp:8081"], PortRecordingReactor())
    edge.privilegedStartService()
    [listener] = edge.listeners
    assert listener.port is reactor.ports[0]


def test_port_that_cannot_be_bound_exits_with_one_line():
    edge, _ = service(["tcp:8081"], RefusingReactor())
    with pytest.raises(SystemExit) as caught:
        edge.privilegedStartService()
    message = caught.value.code
    assert message.startswith("llmedge: --listen=tcp:8081: cannot listen: ")
    assert "Address already in use" in message
    assert "\n" not in message


def test_listener_whose_endpoint_fails_names_endpoint_and_reason():
    edge, _ = service(["tcp:0"])
    Listener(FailingEndpoint(), edge.site, "tcp:80").setServiceParent(edge)
    with pytest.raises(SystemExit) as caught:
        edge.privilegedStartService()
    message = caught.value.code
    assert "--listen=tcp:80" in message
    assert "Permission denied" in message
    assert "\n" not in message


def test_unparseable_endpoint_is_refused_when_the_service_is_built():
    from llmedge.config import ConfigError

    with pytest.raises(ConfigError, match=r"^--listen=bogus:1: "):
        service(["bogus:1"])


@pytest.mark.parametrize(
    "address,text",
    [
        (IPv4Address("TCP", "127.0.0.1", 8080), "tcp:127.0.0.1:8080"),
        (IPv6Address("TCP", "::1", 8080), "tcp:::1:8080"),
        (UNIXAddress(b"/run/llmedge.sock"), "unix:/run/llmedge.sock"),
        (UNIXAddress("/run/llmedge.sock"), "unix:/run/llmedge.sock"),
    ],
)
def test_describe_address(address, text):
    assert describe_address(address) == text


def test_auth_on_without_keys_refuses_to_build():
    with pytest.raises(ConfigError) as caught:
        EdgeService(load({}, None, ["tcp:0"]), MemoryReactorClock())
    message = str(caught.value)
    assert "AUTH_ENABLED" in message and "API_KEYS" in message
    assert "\n" not in message


def redis_service(**environ):
    environ = {"AUTH_ENABLED": "false", "RATE_LIMIT_BACKEND": "redis", **environ}
    return EdgeService(load(environ, None, ["tcp:0"]), MemoryReactorClock())


def test_redis_backend_builds_the_redis_store_with_its_settings():
    from llmedge.limits.redis import RedisStore
    from llmedge.redis_connection import parse_url

    edge = redis_service(REDIS_URL="redis://redis.internal:6380/2",
                         REDIS_TIMEOUT_SECONDS="0.5", REDIS_FAILURE_POLICY="fail-closed")
    store = edge.limits
    assert isinstance(store, RedisStore) and store in edge
    assert (store.address, store.timeout, store.fail_open) == (
        parse_url("redis://redis.internal:6380/2"), 0.5, False)


def test_redis_backend_fails_open_by_default():
    assert redis_service().limits.fail_open is True


@pytest.mark.parametrize("url", ["redis.internal:6379", "redis://u:hunter2@redis/zero"])
def test_bad_redis_url_stops_start_up_with_one_line_naming_it(url):
    with pytest.raises(ConfigError) as caught:
        redis_service(REDIS_URL=url)
    message = str(caught.value)
    assert message.startswith("REDIS_URL=") and "\n" not in message
    assert "hunter2" not in message


def test_bad_redis_url_is_ignored_by_the_memory_backend():
    assert redis_service(RATE_LIMIT_BACKEND="memory", REDIS_URL="nonsense").limits is not None


def test_rate_limit_store_runs_with_the_service():
    edge, reactor = service(["tcp:0"])
    assert edge.limits in edge
    edge.privilegedStartService()
    edge.startService()
    assert reactor.getDelayedCalls()
    edge.stopService()
    assert reactor.getDelayedCalls() == []


def test_no_store_when_rate_limiting_is_off():
    config = load({"AUTH_ENABLED": "false", "RATE_LIMIT_ENABLED": "false"}, None, ["tcp:0"])
    assert EdgeService(config, MemoryReactorClock()).limits is None


def test_otlp_without_the_extra_installed_refuses_to_build(monkeypatch):
    for name in ("opentelemetry", "opentelemetry.sdk", "opentelemetry.sdk.trace"):
        monkeypatch.setitem(sys.modules, name, None)
    config = load({"AUTH_ENABLED": "false", "OTLP_ENDPOINT": "http://127.0.0.1:4318"},
                  None, ["tcp:0"])
    with pytest.raises(ConfigError, match=r"llmedge\[otel\]"):
        EdgeService(config, MemoryReactorClock())


def test_no_opentelemetry_is_loaded_without_the_setting():
    import subprocess

    code = ("import sys; from llmedge.config import load; from llmedge.service import "
            "EdgeService; from twisted.internet.testing import MemoryReactorClock; "
            "EdgeService(load({'AUTH_ENABLED': 'false'}, None, ['tcp:0']), MemoryReactorClock()); "
            "print(any(m.startswith('opentelemetry') for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr


def test_reload_applies_what_start_up_applies(tmp_path):
    """
    Start-up and SIGHUP serve a configuration the same way: the site's
    per-request settings follow the file on reload too.
    """
    from tests.unit.support import Harness

    path = tmp_path / "llmedge.toml"
    path.write_text("[server]\nheader_timeout_seconds = 20\nmax_connections = 100\n")
    h = Harness({}, str(path))
    h.service.config_source = ({**Harness.DEFAULTS}, str(path), ["tcp:0"], "--config")
    assert (h.site.header_timeout, h.site.max_connections) == (20.0, 100)
    path.write_text("[server]\nheader_timeout_seconds = 5\nmax_connections = 7\n"
                    "body_timeout_seconds = 9\nmax_request_size = 1000\n")
    h.service.reload()
    site = h.site
    assert (site.header_timeout, site.body_timeout, site.max_connections,
            site.max_request_size) == (5.0, 9.0, 7, 1000)
