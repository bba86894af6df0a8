# -*- test-case-name: tests.unit.test_direct_answers,tests.unit.test_channel -*-
"""
L{SendsAtOnce}: how the HTTP/1.1 channel writes its answers.

Twisted's TCP transport never writes in C{write}: it keeps the bytes and
sends them on the reactor's next turn, after everything else this turn
does. For an answer that is all there is, that turn costs two
C{epoll_ctl} and an C{epoll_wait}, and the client waits meanwhile for the
work that follows the answer (its access line, its metrics). So on a plain
socket (TCP or unix; under TLS the handle is the TLS connection) an answer
is sent at once (L{llmedge.direct_send}), its head and body in one piece,
whenever the transport holds nothing unsent and is not closing. Anything
else goes through the transport, after what it holds, so bytes never pass
each other, and its buffer bounds and back-pressure work as before: a
client that reads slowly, a C{100 Continue} Twisted queued, a refusal,
what the kernel did not take.

A stream (an answer with a producer) is written through the transport to
its end: its writes of one turn then leave together, where sending each at
once would cost a system call and a wake-up of the client apiece.
"""

from __future__ import annotations

from twisted.web.http_headers import Headers

from llmedge import twisted_insides
from llmedge.direct_send import plain_socket, send


class SendsAtOnce:
    """
    A mixin for an L{twisted.web.http.HTTPChannel}: call L{start_sending}
    once connected, L{answered} when each request is done.
    """

    _socket = None
    _streamed = False
    _holding = False
    _held: bytes | None = None

    def start_sending(self) -> None:
        """
        Find the connection's plain socket, if it has one.
        """
        self._socket = plain_socket(self.transport)

    def answered(self) -> None:
        """
        A request is done: the next answer may be sent at once again.
        """
        self._streamed = False

    def hold_head(self) -> None:
        """
        Keep the next response head until the body that follows it, so the
        two leave in one piece; L{release_head} ends the hold.
        """
        self._holding = True

    def release_head(self) -> None:
        """
        End L{hold_head}, sending a head no body followed (a C{HEAD}, a 204).
        """
        self._holding = False
        held, self._held = self._held, None
        if held is not None:
            self._send(held)

    def _send(self, data: bytes) -> None:
        """
        Send C{data} after everything sent before: straight to the socket
        (L{llmedge.direct_send}) when the transport holds nothing unsent,
        so an answer leaves now, before the work that follows it in this
        turn (its access line, its metrics) and without a turn of the
        reactor; what the kernel does not take, and anything while the
        transport holds bytes (a client that reads slowly, a C{100
        Continue} queued, a refusal), goes through the transport, whose
        buffer bounds and back-pressure are as before.
        """
        held = self._held
        if held is not None:
            self._held = None
            data = held + data
        sock = self._socket
        if sock is not None and not self._streamed and twisted_insides.writable_now(
            self.transport
        ):
            sent = send(sock, data)
            if sent == len(data):
                return
            data = data[sent:]
        self.transport.write(data)

    def write(self, data: bytes) -> None:
        if data:
            self._send(data)

    def writeSequence(self, iovec) -> None:
        self._send(b"".join(iovec))

    def registerProducer(self, producer, streaming) -> None:
        """
        An answer with a producer (a stream) is written through the
        transport to its end, as Twisted writes it: its events of one turn
        leave together, where sending each at once would cost a system call
        and a wake-up of the client apiece.
        """
        self._streamed = True
        super().registerProducer(producer, streaming)

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers) -> None:
        """
        Write the status line and headers as one piece.

        Twisted's own hands the transport a sequence of some forty small
        pieces (each header's name, C{": "}, value and line end), which the
        transport checks one by one: joined here, it is one check and one
        write. The headers are a L{Headers}, whose values Twisted has
        already refused line breaks in when they were set.
        """
        if not isinstance(headers, Headers):
            super().writeHeaders(version, code, reason, headers)
            return
        lines = [version + b" " + code + b" " + reason]
        for name, values in headers.getAllRawHeaders():
            for value in values:
                lines.append(name + b": " + value)
        lines.append(b"\r\n")
        if self._holding:
            self._held = b"\r\n".join(lines)
        else:
            self._send(b"\r\n".join(lines))
