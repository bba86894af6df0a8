# -*- test-case-name: tests.unit.test_client -*-
"""
A lean pooled HTTP/1.1 client for upstream POSTs, bounded against what an
upstream may send.

Twisted's L{twisted.web.client.Agent} is general: it streams request bodies
from producers, prepares for everything, parses each response with a line
receiver feeding a state machine feeding a transfer decoder, and threads
all of it through chains of Deferreds. Measured, that machinery was most
of llmedge's CPU per proxied request. llmedge asks much less of a client:
POST a body already in memory to one of a few fixed URLs, over a
kept-alive connection, and hand back the response head as soon as it
arrives, with the body streamed under back-pressure or read whole.

The package, one idea a module:

  - L{pool}: L{ConnectionPool} (idle connections per host, one expiry
    timer) and L{HTTP11Client} (a provider's client: URL parsed once, the
    request written in one send, straight to the socket when it can:
    L{llmedge.direct_send});
  - L{connection}: one connection; the response head parsed in one pass,
    bodies decoded by slicing (L{chunked}: the chunked coding), every
    buffer bounded;
  - L{wire}: the HTTP/1.1 wire format, pure functions of bytes;
  - L{response}: the L{IResponse} handed back, and L{read_body}, which
    reads a body whole up to a limit (L{body_here}: the same for a body
    already all here, without a Deferred);
  - L{pairs}: the response's headers, L{HeaderPairs}: the head's
    C{(name, value)} pairs as parsed, not a Twisted L{Headers
    <twisted.web.http_headers.Headers>}, which would check them all again;
  - L{interfaces}: what a connection and a response may ask of each other
    (L{IBodySource}, L{IBodySink}), the only way they meet, and what a
    connection asks of its pool (L{IIdlePool}).

A body that arrived with its head (the common case for a completion) is
complete before the response is handed over, so L{read_body} fires at once
and the connection is already back in the pool. Bodies end with the
reasons Twisted's agent gives: L{twisted.web.client.ResponseDone},
L{twisted.web.http.PotentialDataLoss} for a body ended by the connection's
close, L{twisted.web.client.ResponseFailed} otherwise; a response that is
not HTTP fails with a L{MalformedResponse} inside the L{ResponseFailed}, so
a broken upstream can be told from an unreachable one.
"""

from llmedge.providers.client.interfaces import IBodySink, IBodySource, IIdlePool
from llmedge.providers.client.pairs import HeaderPairs
from llmedge.providers.client.pool import ConnectionPool, HTTP11Client
from llmedge.providers.client.response import (
    MAX_BUFFER,
    BodyTooLarge,
    Response,
    body_here,
    discard,
    read_body,
)
from llmedge.providers.client.wire import (
    MAX_HEAD,
    HeadTooLarge,
    MalformedResponse,
    header_block,
)

__all__ = [
    "MAX_BUFFER", "MAX_HEAD", "BodyTooLarge", "ConnectionPool", "HTTP11Client", "HeaderPairs",
    "HeadTooLarge", "IBodySink", "IBodySource", "IIdlePool", "MalformedResponse", "Response",
    "body_here", "discard", "header_block", "read_body",
]
