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
from twisted.logger import Logger
from twisted.web.http import HTTPChannel

_log = Logger(namespace="llmedge.drain")


def close_after_response(request) -> None:
    """
    Make C{request}'s connection close once it is answered (HTTP/1.1;
    HTTP/2 streams end with their response anyway).
    """
    channel = request.channel
    if isinstance(channel, HTTPChannel):
        channel.persistent = False
        request.responseHeaders.setRawHeaders(b"connection", [b"close"])


def drain(site, clock: IReactorTime, grace: float) -> Deferred[bool]:
    """
    Drain C{site}'s connections (its C{open_connections}), for at most
    C{grace} seconds. Fires when none is left: with C{True} if every
    request finished, C{False} if the grace period cut some short.
    """
    site.draining = True
    for connection in list(site.open_connections):
        channel = getattr(connection, "_channel", None)
        if isinstance(channel, HTTPChannel):
            if channel.requests:
                channel.persistent = False
                for request in channel.requests:
                    if not request.startedWriting:
                        request.responseHeaders.setRawHeaders(b"connection", [b"close"])
            else:
                channel.transport.loseConnection()
    if not site.open_connections:
        return succeed(True)
    _log.info("Draining: waiting for {count} connections to finish (at most {grace:g} s)",
              count=len(site.open_connections), grace=grace)
    done: Deferred[None] = Deferred()
    site.drained = done
    cut = []

    def expire() -> None:
        left = list(site.open_connections)
        cut.extend(left)
        if left:
            _log.warn("Grace period over: closing {count} connections still open",
                      count=len(left))
        for connection in left:
            channel = getattr(connection, "_channel", None)
            transport = getattr(channel, "transport", None)
            if transport is not None:
                transport.abortConnection()

    timer = clock.callLater(grace, expire)

    def finished(result):
        if timer.active():
            timer.cancel()
        return not cut

    return done.addCallback(finished)


def connection_closed(site, connection) -> None:
    """
    Called as each connection closes: the drain ends with the last one.
    """
    site.open_connections.discard(connection)
    drained = getattr(site, "drained", None)
    if drained is not None and not site.open_connections and not drained.called:
        site.drained = None
        drained.callback(None)
