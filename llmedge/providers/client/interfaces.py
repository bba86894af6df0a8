# -*- test-case-name: tests.unit.test_client -*-
"""
The two sides of a response body, and what each may ask of the other.

A connection (L{llmedge.providers.client.connection}) decodes the body off
the wire, and goes back to its L{IIdlePool} when it may carry another
request; a response (L{llmedge.providers.client.response}) holds it for
whoever reads it. They meet only through these interfaces: the connection
pushes bytes and the body's end into an L{IBodySink}; the sink steers the
connection through the L{IBodySource} it was given when the body began.
Neither touches the other's attributes, so each can be read, changed and
tested alone (the tests drive a response with a fake source, and a
connection with a fake sink).
"""

from __future__ import annotations

from zope.interface import Interface


class IBodySource(Interface):
    """
    Where a body comes from: flow control over the connection carrying it,
    valid from L{IBodySink.bodyStarted} until L{IBodySink.bodyEnded}.
    """

    def pauseBody() -> None:
        """
        Stop reading the connection until L{resumeBody}.
        """

    def resumeBody() -> None:
        """
        Read the connection again.
        """

    def abortBody() -> None:
        """
        Nobody wants the rest: close the connection at once, for good; the
        sink's L{IBodySink.bodyEnded} follows with the failure.
        """


class IBodySink(Interface):
    """
    Where a body goes: told when it starts, each piece, and how it ended.
    """

    def bodyStarted(source: IBodySource) -> None:
        """
        The body begins; C{source} steers its connection until it ends.
        """

    def bodyData(data: bytes) -> None:
        """
        The next piece of the body, de-chunked.
        """

    def bodyEnded(reason) -> None:
        """
        The body is over: L{None} when it came whole (the connection may be
        carrying another request already), else a L{Failure}:
        L{twisted.web.http.PotentialDataLoss} for a body ended by the
        connection's close, L{twisted.web.client.ResponseFailed} otherwise.
        """


class IIdlePool(Interface):
    """
    What a connection asks of the pool it came from
    (L{llmedge.providers.client.pool.ConnectionPool}).
    """

    def release(connection) -> bool:
        """
        Keep C{connection}, whose response is over, for the next request to
        its host; L{False} when the pool has no room (it is then closed).
        """

    def forget(connection) -> None:
        """
        C{connection}, idle in the pool, is closed or no longer to be used.
        """
