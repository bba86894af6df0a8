# -*- test-case-name: tests.unit.test_drain -*-
"""
Stopping without dropping a request: drain the site's connections.

When llmedge is told to stop (SIGTERM), the service stops listening first
and then drains: every connection with no request in progress is closed at
once (a keep-alive client reconnects, to another instance), every request
in progress finishes, streams included, and its connection is closed after
its response (C{Connection: close}), and a request that arrives meanwhile
on a connection still open is served the same way. When the last
connection has closed, or the grace period has passed, the drain ends; at
the end of the grace period the connections still open are closed, ending
what they were doing (their requests are logged as aborted).
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.http import HTTPChannel

from llmedge.twisted_insides import channel_of

_log = Logger(namespace="llmedge.drain")

#: How often a drain looks for HTTP/2 connections that fell idle.
SWEEP_SECONDS = 0.1
#: How long an idle connection asked to close may take to do so. Over TLS
#: a close waits for the client's close_notify, which a client whose pool
#: does not read idle sockets never sends: past this, it is aborted.
CLOSE_SECONDS = 1.0


def close_after_response(request) -> None:
    """
    Make C{request}'s connection close once it is answered (HTTP/1.1;
    HTTP/2 streams end with their response anyway), saying so in its
    headers if they are not sent yet.
    """
    channel = request.channel
    if isinstance(channel, HTTPChannel):
        channel.persistent = False
        if not request.startedWriting:
            request.responseHeaders.setRawHeaders(b"connection", [b"close"])


def drain(site, clock: IReactorTime, grace: float) -> Deferred[bool]:
    """
    Drain C{site}'s connections (its C{open_connections}), for at most
    C{grace} seconds. Fires when none is left: with C{True} if every
    request finished, C{False} if the grace period cut some short.
    """
    site.draining = True
    closing: dict = {}
    _sweep(site, clock, closing)
    if not site.open_connections:
        return succeed(True)
    _log.info("Draining: waiting for {count} connections to finish (at most {grace:g} s)",
              count=len(site.open_connections), grace=grace)
    done: Deferred[None] = Deferred()
    site.drained = done
    cut = []
    # An HTTP/2 connection serves many streams and has no "close after
    # this response": it is closed (GOAWAY) once it has none in progress,
    # which a sweep every tenth of a second notices.
    sweeping = LoopingCall(_sweep, site, clock, closing)
    sweeping.clock = clock
    sweeping.start(SWEEP_SECONDS, now=False)

    def expire() -> None:
        left = list(site.open_connections)
        cut.extend(left)
        if left:
            _log.warn("Grace period over: closing {count} connections still open",
                      count=len(left))
        for connection in left:
            channel = channel_of(connection)
            transport = getattr(channel, "transport", None)
            if transport is not None:
                transport.abortConnection()

    timer = clock.callLater(grace, expire)

    def finished(result):
        if timer.active():
            timer.cancel()
        if sweeping.running:
            sweeping.stop()
        return not cut

    return done.addCallback(finished)


def _sweep(site, clock: IReactorTime, closing: dict) -> None:
    """
    Close every connection with nothing in progress (aborting those asked
    more than L{CLOSE_SECONDS} ago); mark the HTTP/1.1 ones with a request
    in progress to close after its response.
    """
    now = clock.seconds()
    for connection in list(site.open_connections):
        channel = channel_of(connection)
        transport = getattr(channel, "transport", None)
        if transport is None:
            continue
        asked = closing.get(connection)
        if asked is not None:
            if now - asked >= CLOSE_SECONDS:
                transport.abortConnection()
            continue
        if isinstance(channel, HTTPChannel):
            if channel.requests:
                for request in channel.requests:
                    close_after_response(request)
                continue
        elif getattr(channel, "streams", True):
            continue  # HTTP/2 with streams in progress
        else:
            # HTTP/2, no stream in progress: GOAWAY first.
            h2 = getattr(channel, "conn", None)
            if h2 is not None:
                h2.close_connection()
                transport.write(h2.data_to_send())
        closing[connection] = now
        transport.loseConnection()


def connection_closed(site, connection) -> None:
    """
    Called as each connection closes: the drain ends with the last one.
    """
    site.open_connections.discard(connection)
    drained = getattr(site, "drained", None)
    if drained is not None and not site.open_connections and not drained.called:
        site.drained = None
        drained.callback(None)
