# -*- test-case-name: tests.unit.test_twisted_insides -*-
"""
Every undocumented part of Twisted llmedge relies on, named in one place.

Twisted's public API does not say whether a request's client is gone, does
not let a channel bound the time its head takes, and does not let twistd
exit 0 after a signal. llmedge reaches into Twisted for these, and a
Twisted upgrade may move what it reaches for. So every such name is listed
here, with what it is relied on for, and the uses outside the subclasses
that override Twisted's methods go through the functions below.
tests.unit.test_twisted_insides checks that each name is there and
behaves as relied on (tests.unit.test_channel and test_h2 pin the
channels' own), so an upgrade that changes one fails a test naming it
instead of failing in production. Checked from Twisted 24.7 to 26.10.
"""

from __future__ import annotations

#: C{twisted.web.http.Request}'s C{_disconnected}: true once the
#: connection was lost (there is no public way to ask; C{notifyFinish} is a
#: one-shot Deferred).
REQUEST = ("_disconnected",)

#: C{twisted.web.http.HTTPChannel} and its C{LineReceiver}: see
#: L{llmedge.web.channel.EdgeChannel}, which says what each is used for;
#: and C{_command}, C{_path}: the request line, kept by the channel until
#: the body is read (L{request_line}).
CHANNEL = (
    "_handlingRequest", "_dataBuffer", "_optimisticEagerReadSize", "_networkProducer",
    "_version", "_receivedHeaderSize", "_receivedHeaderCount",
    "_respondToBadRequestAndDisconnect", "_buffer", "paused", "_command", "_path",
    "_transferDecoder", "_finishRequestBody",
)

#: C{twisted.web.http}'s own names: C{_IdentityTransferDecoder(length,
#: data, finish)}, the body decoder of a request with a C{Content-Length},
#: which L{llmedge.web.channel.EdgeChannel} makes for a head it read whole
#: (L{llmedge.web.head}) as C{HTTPChannel.headerReceived} makes it.
HTTP = ("_IdentityTransferDecoder",)

#: C{twisted.web._http2.H2Connection}'s methods that
#: L{llmedge.web.h2.EdgeH2Connection} overrides or calls.
H2 = (
    "_requestReceived", "_requestDataReceived", "_requestEnded", "_requestAborted",
    "_handlePriorityUpdate", "_requestDone", "_tryToWriteControlData",
)

#: What L{llmedge.web.h2.switch_to_h2} uses of Twisted's
#: C{_GenericHTTPChannelProtocol}, as Twisted's own switch to HTTP/2 does.
SWITCH = (
    "_channel", "_negotiatedProtocol", "_requestFactory", "_site", "_factory", "_timeOut",
    "_callLater",
)

#: C{twisted.internet.abstract.FileDescriptor} (every TCP and unix socket
#: transport): C{_tempDataLen}, C{dataBuffer} and C{offset} say how much it
#: holds unsent, C{_writeDisconnecting} that its writing half is closing
#: (L{writable_now}).
TRANSPORT = ("_tempDataLen", "dataBuffer", "offset", "_writeDisconnecting")

#: C{twisted.internet.base.ReactorBase}: C{_exitSignal}, the signal that
#: stopped the reactor, which twistd re-raises once the reactor has run
#: down (Twisted's C{_ISupportsExitSignalCapturing}).
REACTOR = ("_exitSignal",)


def gone(request) -> bool:
    """
    Whether C{request} needs no more writing: answered already, or its
    client went away.
    """
    return request.finished or getattr(request, "_disconnected", False)


def request_line(channel) -> tuple[bytes | None, bytes]:
    """
    The method and target of the request an HTTP/1.1 channel is reading
    the body of: Twisted gives them to the request only once the body is
    whole, and a body refused midway is recorded with them.
    """
    return getattr(channel, "_command", None), getattr(channel, "_path", b"")


def channel_of(connection):
    """
    The channel (HTTP/1.1 or HTTP/2) serving one of Twisted's
    protocol-negotiating connections, or L{None}.
    """
    return getattr(connection, "_channel", None)


def clear_exit_signal(reactor) -> None:
    """
    Forget the signal that stopped C{reactor}, so twistd exits 0 rather
    than dying again by that signal.
    """
    if getattr(reactor, "_exitSignal", None) is not None:
        reactor._exitSignal = None



def writable_now(transport) -> bool:
    """
    Whether bytes written straight to C{transport}'s socket now would
    follow everything written to it before: the transport (a
    L{twisted.internet.abstract.FileDescriptor}) holds nothing unsent and
    is not closing, neither whole nor its writing half. False for a
    transport of another kind.
    """
    return (
        getattr(transport, "_tempDataLen", 1) == 0
        and len(getattr(transport, "dataBuffer", b"")) <= getattr(transport, "offset", 0)
        and getattr(transport, "connected", False)
        and not transport.disconnecting
        and not getattr(transport, "_writeDisconnecting", True)
    )
