# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
Reading HTTP/1.1 requests from bytes, for the hostile fake upstream
(L{llmedge.testing.hostile}), which owns its socket so that it can answer
with bytes no HTTP library would write.

The reader is strict where that is free and simple where it can be: its
clients are llmedge and tests, not the open internet. Its buffers are
bounded all the same (a head past L{MAX_HEAD}, a body past L{MAX_BODY}),
so a runaway client cannot grow the fake either.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

#: The most bytes a request line and headers may take.
MAX_HEAD = 64 * 1024
#: The most bytes a body may take.
MAX_BODY = 16 * 1024 * 1024
#: The longest chunk-size line (with extensions) or trailer line.
_MAX_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")


class BadRequest(Exception):
    """
    The bytes are not a request this reader takes; C{status} is the code
    to refuse it with before closing the connection.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """
    One request: its line, its headers (lower-cased names, every value
    kept in order), its body.
    """

    method: str
    target: str
    version: str
    headers: dict[str, list[str]] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> dict[str, str]:
        """
        The query string's parameters, the first value of each.
        """
        pairs = urllib.parse.parse_qsl(self.target.partition("?")[2])
        return {name: value for name, value in reversed(pairs)}

    def header(self, name: str) -> str | None:
        """
        The first value of header C{name}, or L{None}.
        """
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def keep_alive(self) -> bool:
        """
        Whether the client lets the connection carry another request.
        """
        tokens = {t.strip().lower() for v in self.headers.get("connection", []) for t in v.split(",")}
        if self.version == "HTTP/1.1":
            return "close" not in tokens
        return "keep-alive" in tokens

    def json(self) -> Any:
        """
        The body parsed as JSON, or L{None} when it is not JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class RequestReader:
    """
    Bytes in (L{feed}), whole requests out (L{next}), pipelined or split
    anywhere.

    @ivar wants_continue: set when a request announced
        C{Expect: 100-continue} and its body has not come yet; the owner
        sends C{100 Continue} and clears it.
    """

    def __init__(self, max_head: int = MAX_HEAD, max_body: int = MAX_BODY) -> None:
        self._max_head = max_head
        self._max_body = max_body
        self._buffer = bytearray()
        self._scanned = 0
        self._request: Request | None = None
        self._length = 0
        self._chunked = False
        self._chunk_left: int | None = None
        self._parts: list[bytes] = []
        self.wants_continue = False

    def feed(self, data: bytes) -> None:
        """
        Take more bytes; they are parsed by L{next}.

        @raise BadRequest: more is buffered than a head and a body can take.
        """
        self._buffer += data
        if len(self._buffer) > self._max_head + self._max_body + _MAX_LINE:
            raise BadRequest(413, "too much input")

    def next(self) -> Request | None:
        """
        The next whole request, or L{None} until more bytes come.

        @raise BadRequest: the bytes cannot be a request, or break a bound.
        """
        if self._request is None and not self._read_head():
            return None
        body = self._read_chunked() if self._chunked else self._read_length()
        if body is None:
            return None
        request, self._request = self._request, None
        assert request is not None
        request.body = body
        self.wants_continue = False
        return request

    def _read_head(self) -> bool:
        while self._buffer.startswith(b"\r\n"):  # stray line ends between requests
            del self._buffer[:2]
        end = self._buffer.find(b"\r\n\r\n", max(0, self._scanned - 3))
        if end < 0:
            self._scanned = len(self._buffer)
            if self._scanned > self._max_head:
                raise BadRequest(431, "request head too large")
            return False
        if end + 4 > self._max_head:
            raise BadRequest(431, "request head too large")
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[:end + 4]
        self._scanned = 0
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
            raise BadRequest(400, f"bad request line {lines[0][:100]!r}")
        request = Request(*parts)
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip():
                raise BadRequest(400, f"bad header line {line[:100]!r}")
            request.headers.setdefault(name.lower(), []).append(value.strip())
        self._frame(request)
        self._request = request
        return True

    def _frame(self, request: Request) -> None:
        codings = [t.strip().lower() for v in request.headers.get("transfer-encoding", [])
                   for t in v.split(",")]
        lengths = set(request.headers.get("content-length", []))
        if codings:
            if codings[-1] != "chunked" or lengths:
                raise BadRequest(400, "unsupported or ambiguous transfer-encoding")
            self._chunked, self._chunk_left, self._parts = True, None, []
        elif lengths:
            (length,) = lengths if len(lengths) == 1 else (None,)
            if length is None or not length.isdigit():
                raise BadRequest(400, "bad content-length")
            self._chunked, self._length = False, int(length)
            if self._length > self._max_body:
                raise BadRequest(413, "body too large")
        else:
            self._chunked, self._length = False, 0
        expect = (request.header("expect") or "").lower()
        self.wants_continue = expect == "100-continue"

    def _read_length(self) -> bytes | None:
        if len(self._buffer) < self._length:
            return None
        body = bytes(self._buffer[:self._length])
        del self._buffer[:self._length]
        return body

    def _line(self) -> bytes | None:
        end = self._buffer.find(b"\r\n")
        if end < 0:
            if len(self._buffer) > _MAX_LINE:
                raise BadRequest(400, "chunk line too long")
            return None
        line = bytes(self._buffer[:end])
        del self._buffer[:end + 2]
        return line

    def _read_chunked(self) -> bytes | None:
        while True:
            if self._chunk_left is None:  # a chunk-size line
                line = self._line()
                if line is None:
                    return None
                size = line.split(b";")[0].strip()
                if not size or not set(size) <= _HEX:
                    raise BadRequest(400, "bad chunk size")
                self._chunk_left = int(size, 16) or -1
                if sum(map(len, self._parts)) + self._chunk_left > self._max_body:
                    raise BadRequest(413, "body too large")
            elif self._chunk_left < 0:  # trailers, until the blank line
                line = self._line()
                if line is None:
                    return None
                if not line:
                    self._chunk_left = None
                    return b"".join(self._parts)
            else:
                need = self._chunk_left + 2
                if len(self._buffer) < need:
                    return None
                if self._buffer[need - 2:need] != b"\r\n":
                    raise BadRequest(400, "chunk not followed by CRLF")
                self._parts.append(bytes(self._buffer[:need - 2]))
                del self._buffer[:need]
                self._chunk_left = None
