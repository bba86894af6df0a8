"""
Driving a real L{EdgeSite} over an in-memory transport.

The bytes go through Twisted's real HTTP/1.1 parser and our real
L{EdgeRequest}, so these unit tests check what a client would see on the
wire, with time driven by a L{MemoryReactorClock} and no sockets.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from llmedge.config import load
from llmedge.service import EdgeService


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes
    complete: bool = True

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[bytes]:
        """
        The C{data:} payloads of an event-stream body, in order.
        """
        return [
            line[len(b"data: "):]
            for line in self.body.split(b"\n")
            if line.startswith(b"data: ")
        ]


def parse_response(raw: bytes) -> Response:
    """
    Parse one HTTP/1.1 response (possibly still incomplete).
    """
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.setdefault(name.decode().lower(), []).append(value.strip().decode())
    if headers.get("transfer-encoding") == ["chunked"]:
        body, complete = b"", False
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                complete = True
                break
            body, rest = body + rest[:size], rest[size + 2:]
        return Response(status, headers, body, complete)
    length = int(headers.get("content-length", ["0"])[0])
    return Response(status, headers, rest[:length], len(rest) >= length)


@dataclass
class Connection:
    """
    One client connection to the site.
    """

    protocol: Any
    transport: StringTransport

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)

    def response(self) -> Response:
        return parse_response(self.transport.value())

    def lose(self) -> None:
        from twisted.internet.error import ConnectionDone
        from twisted.python.failure import Failure

        self.protocol.connectionLost(Failure(ConnectionDone()))


@dataclass
class Harness:
    """
    An llmedge service built from settings, over a fake reactor.
    """

    environ: dict[str, str] = field(default_factory=dict)
    config_path: str | None = None

    #: Protection is off unless a test turns it on: most tests are about
    #: something else, and the wrappers have tests of their own.
    DEFAULTS = {"AUTH_ENABLED": "false", "RATE_LIMIT_ENABLED": "false"}

    def __post_init__(self) -> None:
        self.reactor = MemoryReactorClock()
        self.reactor.advance(1_800_000_000)
        environ = {**self.DEFAULTS, **self.environ}
        self.config = load(environ, self.config_path, ["tcp:0"])
        self.service = EdgeService(self.config, self.reactor)
        self.site = self.service.site

    def connect(self, transport: StringTransport | None = None) -> Connection:
        protocol = self.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
        transport = StringTransport() if transport is None else transport
        protocol.makeConnection(transport)
        return Connection(protocol, transport)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | dict | None = None,
        headers: dict[str, str] | None = None,
        advance: bool = True,
    ) -> Response:
        """
        Send one request and return what came back, running the clock
        until the response is complete (or it stops changing).
        """
        connection = self.connect()
        connection.send(raw_request(method, path, body, headers))
        if advance:
            for _ in range(1000):
                response = connection.response() if connection.transport.value() else None
                if response is not None and response.complete:
                    break
                self.reactor.advance(0.05)
        return connection.response()


def raw_request(
    method: str,
    path: str,
    body: bytes | dict | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """
    The bytes of an HTTP/1.1 request; a C{dict} body is sent as JSON.
    """
    headers = {"Host": "llmedge.test", **(headers or {})}
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    if body is not None:
        headers.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    return head.encode() + b"\r\n" + (body or b"")
