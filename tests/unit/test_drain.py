# -*- test-case-name: tests.unit.test_drain -*-
"""
Tests for L{llmedge.web.drain} and the service's stop: idle connections
closed, requests in flight finished on connections then closed, the grace
period bounding it all; time driven by the memory reactor's clock.
"""

import json

from llmedge.web.drain import drain
from tests.unit.support import Harness, raw_request

SLOW = '[providers.slow]\nkind = "mock"\nlatency = 1.0\n' \
       '[models."slow"]\ntargets = [{ provider = "slow", model = "mock" }]\n'
CHAT = {"model": "slow", "messages": [{"role": "user", "content": "hi"}]}


def harness(tmp_path, **environ):
    config = tmp_path / "llmedge.toml"
    config.write_text(SLOW)
    return Harness(environ, str(config))


def fired(d):
    box = []
    d.addBoth(box.append)
    return box


def test_idle_connections_close_at_once(tmp_path):
    h = harness(tmp_path)
    idle = h.connect()
    done = fired(drain(h.site, h.reactor, 30))
    assert idle.transport.disconnecting
    assert not done
    idle.lose()
    assert done == [True]


def test_nothing_open_nothing_to_wait_for(tmp_path):
    h = harness(tmp_path)
    assert fired(drain(h.site, h.reactor, 30)) == [True]


def test_request_in_flight_finishes_then_its_connection_closes(tmp_path):
    h = harness(tmp_path)
    busy = h.connect()
    busy.send(raw_request("POST", "/v1/chat/completions", CHAT))
    done = fired(drain(h.site, h.reactor, 30))
    assert not busy.transport.disconnecting
    h.reactor.advance(1.0)
    response = busy.response()
    assert response.status == 200
    assert response.headers["connection"] == ["close"]
    assert json.loads(response.body)["object"] == "chat.completion"
    assert busy.transport.disconnecting
    assert not done
    busy.lose()
    assert done == [True]


def test_grace_period_bounds_the_drain(tmp_path):
    h = harness(tmp_path)
    busy = h.connect()
    busy.send(raw_request("POST", "/v1/chat/completions", CHAT))
    done = fired(drain(h.site, h.reactor, 0.5))
    h.reactor.advance(0.5)
    assert busy.transport.disconnected  # aborted
    busy.lose()
    assert done == [False]  # cut short


def test_service_stop_turns_ready_off_and_waits_for_requests(tmp_path):
    h = harness(tmp_path, SHUTDOWN_GRACE_SECONDS="10")
    h.service.privilegedStartService()
    h.service.startService()
    busy = h.connect()
    busy.send(raw_request("POST", "/v1/chat/completions", CHAT))
    other = h.connect()
    other.send(raw_request("GET", "/health/ready"))
    assert other.response().status == 200
    stopped = fired(h.service.stopService())
    # idle at the stop: closed at once
    assert other.transport.disconnecting
    late = h.connect()  # a connection accepted just before the listener closed
    late.send(raw_request("GET", "/health/ready"))
    ready = late.response()
    assert (ready.status, json.loads(ready.body)["reason"]) == (503, "draining")
    assert ready.headers["connection"] == ["close"]
    assert not stopped
    h.reactor.advance(1.0)
    assert busy.response().status == 200
    h.reactor._exitSignal = 15  # as the SIGTERM handler leaves it
    for connection in (busy, other, late):
        connection.lose()
    assert stopped == [None]
    # every request finished: twistd is told to exit 0, not re-raise SIGTERM
    assert h.reactor._exitSignal is None


def test_idle_connection_that_does_not_close_is_aborted(tmp_path):
    """
    Over TLS a close waits for the client's close_notify, which a client
    whose pool does not read idle sockets never sends: such a connection
    is aborted a second later instead of holding the stop for the whole
    grace period.
    """
    from llmedge.web.drain import CLOSE_SECONDS

    h = harness(tmp_path)
    stubborn = h.connect()
    done = fired(drain(h.site, h.reactor, 30))
    assert stubborn.transport.disconnecting and not stubborn.transport.disconnected
    h.reactor.advance(CLOSE_SECONDS + 0.1)
    assert stubborn.transport.disconnected  # aborted
    stubborn.lose()
    assert done == [True]  # nothing was in progress: nothing was cut
