# -*- test-case-name: tests.unit.test_head -*-
"""
A request head read in one pass, when it arrived whole and plain.

Twisted's L{HTTPChannel} reads a head a line at a time: per line a split
of everything buffered behind it, a call into C{lineReceived}, and for a
header a split, a name check, a strip, a value check and a length check,
about a fifth of llmedge's CPU on a small request. Nearly every request
an SDK sends arrives whole in one read, in the plainest form HTTP/1.1
allows; L{whole_head} reads such a head at once, with a few scans that
run in C over all of it, and L{ReadsWholeHeads} hands it to the channel as
Twisted's parser would have.

It is a fast path, not a second parser: it only ever I{accepts} a head
Twisted would accept and read the same way, and declines everything else
(returns L{None}) without deciding anything, so that Twisted's line parser
meets every unusual, malformed or hostile head as before and gives it the
answer it gives today (and L{llmedge.web.channel.EdgeChannel} its JSON).
Declined are: a head not yet whole; a request line that is not three parts
split by single spaces, with a method that is a token, a target of printable
ASCII and version C{HTTP/1.1} or C{HTTP/1.0}; any byte NUL, or CR or LF
outside a line end; a header without a colon or whose name is not a token;
a folded (continued) header line; C{Transfer-Encoding} (chunked bodies take
Twisted's path); C{Content-Length} twice, or not all digits; more headers
than the channel's C{maxHeaders}; a head larger than its
C{totalHeadersSize}. Where Twisted releases differ in what they accept
(24.7 refuses C{&} in a header name, which RFC 9110 allows), the fast
path accepts only what every supported release accepts.
"""

from __future__ import annotations

from typing import NamedTuple

from twisted.web.http import _IdentityTransferDecoder
from twisted.web.iweb import INonQueuedRequestFactory

#: RFC 9110 token characters, less C{&}, which Twisted 24.7 refuses in a
#: header name: declined here, it is decided by the release's own parser.
_TOKEN = b"!#$%'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: What a request target may hold: printable ASCII, no space (Twisted
#: takes a little more, which it then decides itself).
_TARGET = bytes(range(0x21, 0x7F))
_VERSIONS = (b"HTTP/1.1", b"HTTP/1.0")
_END = b"\r\n\r\n"


class Head(NamedTuple):
    """
    A request head read whole.

    @ivar method: the method, as sent.
    @ivar target: the request target, as sent.
    @ivar version: C{HTTP/1.1} or C{HTTP/1.0}.
    @ivar headers: (name, value) pairs in order, values stripped of the
        spaces and tabs around them, as Twisted stores them.
    @ivar length: the C{Content-Length}, 0 without one.
    @ivar size: the bytes Twisted counts against C{totalHeadersSize} (the
        lines without their ends).
    @ivar used: how many bytes of the buffer after the request line the
        head took, its blank line included.
    """

    method: bytes
    target: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    length: int
    size: int
    used: int


def whole_head(line: bytes, rest: bytes, max_size: int, max_headers: int) -> Head | None:
    """
    Read the head whose request line is C{line} (without its CRLF) from the
    bytes that followed it, C{rest}, if it is whole and plain (see the
    module); L{None} otherwise.
    """
    if rest[:2] == b"\r\n":
        block, used = b"", 2
    else:
        end = rest.find(_END, 0, max_size + 2)
        if end < 0:
            return None
        block, used = rest[:end], end + 4
    size = len(line) + len(block)
    if size > max_size or b"\x00" in block:
        return None
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if (
        version not in _VERSIONS
        or not method
        or method.translate(None, _TOKEN)
        or not target
        or target.translate(None, _TARGET)
    ):
        return None
    lines = block.split(b"\r\n") if block else []
    if len(lines) > max_headers:
        return None
    if b"\r" in block or b"\n" in block:
        bare = block.replace(b"\r\n", b"")
        if b"\r" in bare or b"\n" in bare:
            return None  # a CR or LF that ends no line
    headers = []
    length = None
    for header in lines:
        name, colon, value = header.partition(b":")
        if not colon or not name or name.translate(None, _TOKEN):
            return None  # no colon, a folded line (leading space), a bad name
        value = value.strip(b" \t")
        if len(name) in (14, 17):
            lowered = name.lower()
            if lowered == b"content-length":
                if length is not None or not value.isdigit():
                    return None
                length = int(value)
            elif lowered == b"transfer-encoding":
                return None
        headers.append((name, value))
    size -= 2 * len(lines) - (2 if lines else 0)
    return Head(method, target, version, headers, length or 0,
                size, used)


class ReadsWholeHeads:
    """
    A mixin for an L{twisted.web.http.HTTPChannel}: a request line whose
    head is whole and plain behind it is read with that head at once.
    """

    def read_whole_head(self, line: bytes) -> bool:
        """
        Read the head C{line} starts, if it is whole and plain (L{whole_head});
        whether it was (else the line is for Twisted's parser).
        """
        if self._receivedHeaderSize or not line or not self.persistent:
            return False  # not a request line, or one Twisted drops
        head = whole_head(line, self._buffer, self.totalHeadersSize, self.maxHeaders)
        if head is None:
            return False
        self._buffer = self._buffer[head.used:]
        self._take(head)
        return True

    def _take(self, head: Head) -> None:
        """
        Do with a head read whole what C{HTTPChannel.lineReceived} does
        with it line by line: make the request, note its request line,
        give it its headers, choose the body's decoder, and end the head
        (Twisted's end-of-head step, the checks of C{allHeadersReceived}
        included). The LineReceiver's loop then hands the body, raw, to the
        decoder, or, with none, the request has been handed over already.
        """
        factory = self.requestFactory
        if INonQueuedRequestFactory.providedBy(factory):
            request = factory(self)
        else:
            request = factory(self, len(self.requests))
        self.requests.append(request)
        self._command, self._path, self._version = head.method, head.target, head.version
        self._receivedHeaderSize = head.size
        self._receivedHeaderCount = len(head.headers)
        add = request.requestHeaders.addRawHeader
        for name, value in head.headers:
            add(name, value)
        if head.length:
            self.length = head.length
            self._transferDecoder = _IdentityTransferDecoder(
                head.length, request.handleContentChunk, self._finishRequestBody)
        self.allHeadersReceived()
        if self.length == 0:
            self.allContentReceived()
        else:
            self.setRawMode()
