# -*- test-case-name: tests.unit.test_client -*-
"""
The chunked transfer coding read as its bytes arrive, by slicing: a pure
state machine over bytes, kept apart from the connection that feeds it
(L{llmedge.providers.client.connection}), so each can be read alone.

Every byte an upstream sends lands in a bounded place: a chunk-size line
in at most L{MAX_CHUNK_LINE} bytes, trailers (read, then dropped) in at
most L{MAX_HEAD}; chunk data goes straight out. Where the bytes split
changes nothing but when the data comes out.
"""

from __future__ import annotations

import re

from llmedge.providers.client.wire import MAX_HEAD, MalformedResponse

#: A chunk-size line longer than this is not HTTP.
MAX_CHUNK_LINE = 4096

#: A chunk-size line, its CRs and LF stripped: up to 15 hex digits, then
#: blanks and an extension, which are skipped.
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?\Z")
#: The same line read in place, CRs and LF included.
_CHUNK_HEAD = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;[^\n]*)?\r*\n")

# What comes next: a size line, chunk data, the CRLF after it, trailers.
_SIZE, _DATA, _CRLF, _TRAILER, _END = range(5)

#: What L{ChunkedDecoder.feed} found after the data: more is to come, the
#: body ended with the bytes fed, or it ended before their end.
MORE, ENDED, OVERRUN = "more", "ended", "overrun"


class ChunkedDecoder:
    """
    One chunked body, decoded piece by piece.
    """

    __slots__ = ("_state", "_remaining", "_partial", "_trailer")

    def __init__(self) -> None:
        self._state = _SIZE
        self._remaining = 0  # bytes left of the chunk
        self._partial = b""  # bytes of an incomplete line
        self._trailer = 0  # bytes of trailers so far

    def feed(self, data: bytes) -> tuple[bytes, str | MalformedResponse]:
        """
        The body's bytes in C{data} (empty when there are none), and what
        follows them: L{MORE}, L{ENDED}, L{OVERRUN}, or the
        L{MalformedResponse} the bytes after them are (nothing is to be
        fed after an end or an error).
        """
        if self._partial:
            data, self._partial = self._partial + data, b""
        pieces = []
        position, end = 0, len(data)
        state = self._state
        error = None
        while position < end:
            if state == _DATA:
                stop = position + self._remaining
                if stop > end:
                    pieces.append(data[position:] if position else data)
                    self._remaining = stop - end
                    break
                pieces.append(data[position:stop])
                position, state = stop, _CRLF
            elif state == _CRLF:
                if data.startswith(b"\r\n", position):
                    position, state = position + 2, _SIZE
                elif data[position] == 10:
                    position, state = position + 1, _SIZE
                elif position + 1 == end and data[position] == 13:
                    self._partial = b"\r"
                    break
                else:
                    error = MalformedResponse("no CRLF after a chunk")
                    break
            else:
                if state == _SIZE:
                    # The common case at once: a size line, the chunk and
                    # its CRLF all here (a whole event of a stream).
                    match = _CHUNK_HEAD.match(data, position)
                    if match is not None and match.end() - position <= MAX_CHUNK_LINE:
                        start = match.end()
                        size = int(match.group(1), 16)
                        stop = start + size
                        if size and data.startswith(b"\r\n", stop):
                            pieces.append(data[start:stop])
                            position = stop + 2
                            continue
                        self._remaining, position, self._trailer = size, start, 0
                        state = _DATA if size else _TRAILER
                        continue
                eol = data.find(b"\n", position)
                if eol < 0:
                    self._partial = data[position:]
                    limit = MAX_CHUNK_LINE if state == _SIZE else MAX_HEAD - self._trailer
                    if len(self._partial) > limit:
                        error = MalformedResponse("a chunk-size line or trailers too long")
                    break
                line = data[position:eol].rstrip(b"\r")
                size, position = eol + 1 - position, eol + 1
                if state == _SIZE:
                    if len(line) > MAX_CHUNK_LINE:
                        error = MalformedResponse("a chunk-size line too long")
                        break
                    match = _CHUNK_SIZE.match(line)
                    if match is None:
                        error = MalformedResponse("a chunk-size line that is not one")
                        break
                    self._remaining = int(match.group(1), 16)
                    state = _DATA if self._remaining else _TRAILER
                    self._trailer = 0
                elif line:
                    self._trailer += size
                    if self._trailer > MAX_HEAD:
                        error = MalformedResponse("trailers too long")
                        break
                else:
                    state = _END
                    break
        self._state = state
        body = (pieces[0] if len(pieces) == 1 else b"".join(pieces)) if pieces else b""
        if error is not None:
            return body, error
        if state == _END:
            return body, ENDED if position == end else OVERRUN
        return body, MORE
