# -*- test-case-name: tests.unit.test_h2 -*-
"""
The bounds of an HTTP/2 request's header block, and L{HeaderBlocks}, which
follows a client's frames by their 9-byte headers alone to tell how large a
header block is growing before h2 has decoded (or even buffered) it.

Kept apart from L{llmedge.web.h2}'s connection: these are pure functions
of bytes and counts, tested on their own.
"""

from __future__ import annotations

from twisted.web.http import HTTPChannel

#: HTTP/1.1's bounds (Twisted's HTTPChannel), counted as HTTP/1.1 counts
#: them: the fields' bytes as lines (C{name: value}, pseudo-headers as the
#: request line), and the fields other than pseudo-headers. The same number
#: is advertised as C{SETTINGS_MAX_HEADER_LIST_SIZE}, which RFC 9113 (6.5.2)
#: counts with 32 more octets a field: no list within it is refused.
MAX_HEADER_LIST_SIZE = HTTPChannel.totalHeadersSize
MAX_HEADERS = HTTPChannel.maxHeaders
#: Past these a header block is not decoded at all: twice the list bound
#: encoded (an honest encoder never makes a block larger than its list), in
#: at most this many frames. HPACK decoding is pure Python: a 1 MiB block
#: (what h2's own bound of 64 CONTINUATION frames lets through) can cost
#: seconds of CPU; 32 KiB costs milliseconds.
MAX_HEADER_BLOCK_BYTES = 2 * MAX_HEADER_LIST_SIZE
MAX_HEADER_BLOCK_FRAMES = 16
#: What hpack decodes before it gives up (a small block can inflate through
#: its dynamic table: an HPACK bomb); between L{MAX_HEADER_LIST_SIZE} and
#: this a stream is answered 431, past it the connection is closed.
MAX_DECODED_HEADER_LIST_SIZE = 4 * MAX_HEADER_LIST_SIZE

_HEADERS, _PUSH_PROMISE, _CONTINUATION = 0x1, 0x5, 0x9
_END_HEADERS = 0x4
_PREFACE_LENGTH = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def headers_over_bounds(headers: list[tuple[bytes, bytes]]) -> bool:
    """
    Whether a request's header list is over L{MAX_HEADER_LIST_SIZE} or
    L{MAX_HEADERS}.
    """
    size = count = 0
    for name, value in headers:
        size += len(name) + len(value) + 2
        count += not name.startswith(b":")
    return size > MAX_HEADER_LIST_SIZE or count > MAX_HEADERS


class HeaderBlocks:
    """
    Follows the frames a client sends, by their 9-byte headers alone, to
    tell when a header block (HEADERS, then CONTINUATION frames up to
    C{END_HEADERS}) is in progress and how large it is growing, which h2
    does not say: it reports a request only once its block is whole, and
    buffers the block until then.

    @ivar open: a header block has begun and not ended.
    """

    open = False

    def __init__(self) -> None:
        self._skip = _PREFACE_LENGTH  # payload (or preface) bytes still to pass
        self._head = b""  # a frame header not whole yet
        self._ends_block = False
        self._size = 0
        self._frames = 0

    def feed(self, data: bytes) -> bool:
        """
        Follow C{data}; L{False} when a header block crossed
        L{MAX_HEADER_BLOCK_BYTES} or L{MAX_HEADER_BLOCK_FRAMES}.
        """
        at, end = 0, len(data)
        while at < end:
            if self._skip:
                step = min(self._skip, end - at)
                self._skip -= step
                at += step
                if not self._skip:
                    self._frame_done()
                continue
            take = 9 - len(self._head)
            self._head += data[at:at + take]
            at += take
            if len(self._head) < 9:
                break
            length, kind, flags = int.from_bytes(self._head[:3], "big"), self._head[3], self._head[4]
            self._head = b""
            if kind in (_HEADERS, _PUSH_PROMISE) or (kind == _CONTINUATION and self.open):
                if kind != _CONTINUATION:
                    self.open, self._size, self._frames = True, 0, 0
                self._size += length
                self._frames += 1
                if self._size > MAX_HEADER_BLOCK_BYTES or self._frames > MAX_HEADER_BLOCK_FRAMES:
                    return False
                self._ends_block = bool(flags & _END_HEADERS)
            self._skip = length
            if not length:
                self._frame_done()
        return True

    def _frame_done(self) -> None:
        if self._ends_block:
            self.open = self._ends_block = False
