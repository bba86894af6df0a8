# -*- test-case-name: tests.unit.test_client_direct,tests.unit.test_direct_answers -*-
"""
Writing straight to a connection's socket: a request upstream
(L{RequestWriter}) and an answer to a client
(L{llmedge.web.channel.EdgeChannel}).

Twisted's TCP transport never writes in C{write}: it keeps the bytes,
asks the reactor to watch the socket for room (an C{epoll_ctl}), writes
them on the reactor's next turn, and stops watching (another
C{epoll_ctl}). For a request of a few kilobytes, which the kernel takes
whole at once, that is two system calls and a turn of the reactor per
request for nothing (a profile of a proxied request: two C{epoll_wait}
and two C{epoll_ctl} become one C{epoll_wait}; bench/README.md). So a
request goes out with one C{send} on the connection's socket, and only
what the kernel did not take is left to the transport, which then writes
everything that follows on that connection, so bytes never pass each
other.

Only a plain, non-blocking socket is written to this way, the one the
transport's public L{ISystemHandle.getHandle} gives: under TLS the handle
is the TLS connection, not a socket, and every write goes through the
transport as before.

The same holds for an answer: written at once, it leaves before the work
that follows it in the same turn (the access line, the metrics), and
without the reactor's turn and two C{epoll_ctl}.
"""

from __future__ import annotations

import socket


def plain_socket(transport):
    """
    The plain, non-blocking socket under C{transport} (TCP or a unix
    socket, from its public L{ISystemHandle.getHandle}), or L{None} (TLS,
    whose handle is the TLS connection, or anything else).
    """
    handle = getattr(transport, "getHandle", None)
    sock = handle() if handle is not None else None
    if isinstance(sock, socket.socket) and sock.gettimeout() == 0.0:
        return sock
    return None


class RequestWriter:
    """
    Writes the requests of one connection: straight to its socket while
    nothing is waiting in the transport's buffer, through the transport
    for good after the first write the socket did not take whole.
    """

    __slots__ = ("_transport", "_socket")

    def __init__(self, transport) -> None:
        self._transport = transport
        self._socket = plain_socket(transport)

    @property
    def direct(self) -> bool:
        """
        Whether the next write goes straight to the socket.
        """
        return self._socket is not None

    def write(self, data: bytes) -> None:
        """
        Send C{data} after everything written before.
        """
        sock = self._socket
        if sock is not None:
            sent = send(sock, data)
            if sent == len(data):
                return
            self._socket = None
            data = data[sent:]
        self._transport.write(data)


def send(sock, data: bytes) -> int:
    """
    Send what the kernel takes of C{data} at once on the non-blocking
    C{sock}: how many bytes, 0 when it takes none or the connection is
    failing (whoever writes the rest through the transport then meets the
    error as the transport would have).
    """
    try:
        return sock.send(data)
    except OSError:
        return 0
