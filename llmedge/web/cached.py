# -*- test-case-name: tests.unit.test_cached -*-
"""
The response cache in the request path: one step of L{llmedge.web.v1.ModelCall},
between checking a request and calling its providers.

A request is first I{consulted}: may it use the cache at all (its model,
its route, its C{Cache-Control}), under which key, and is its answer there
already? The answer is a L{Visit}, whose C{result} is what the client reads
in C{x-llmedge-cache}:

  - C{hit}: the stored answer is written, in the client's dialect, as a
    whole document or replayed as a stream; no provider is called and no
    tokens are reserved (a hit costs the provider nothing, so it costs the
    key's token budget nothing).
  - C{miss}: the providers are called as without a cache, and the answer,
    if it is a complete 200 (a whole document, or a stream that reached its
    end), is kept: L{Visit.keep}.
  - C{bypass}: the cache is not used (off for the model or route, C{no-store},
    or the store cannot answer now: a Redis outage costs a call, never an
    error).

Identical requests arriving while the first one is still being answered
do not each call the provider (single flight, L{llmedge.cache.flight}): the
first one leads, the others wait for what it keeps, at most
C{cache.wait_seconds}, and go upstream themselves if it keeps nothing.

One entry serves streams and whole answers alike (L{llmedge.cache.entry}):
it holds the answer as a L{llmedge.dialects.reply.Reply}, which any
dialect's codec can write or replay, and, when the answer was a whole
document, its bytes as the client got them, which a later whole-answer
hit writes back unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from llmedge.cache import entry as entries
from llmedge.cache.flight import Flight, Flights
from llmedge.cache.key import IGNORED_FIELDS, IGNORED_FIELDS_WITH_METADATA, cache_key
from llmedge.cache.recording import (
    ChatChunkReader,
    EventReader,
    MessagesReader,
    ResponsesReader,
    recorded,
)
from llmedge.cache.store import CacheUnavailable, ICacheStore
from llmedge.dialects import chat_reply, messages_reply, responses_read
from llmedge.dialects.reply import IReplyStream, Reply
from llmedge.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES, Answer, Call

HIT, MISS, BYPASS = "hit", "miss", "bypass"
HEADER = b"x-llmedge-cache"

#: What each cached route leaves out of the key (fields that cannot change
#: the answer); a route not listed is never cached.
_IGNORED = {
    CHAT: IGNORED_FIELDS,
    COMPLETIONS: IGNORED_FIELDS,
    EMBEDDINGS: IGNORED_FIELDS,
    RESPONSES: IGNORED_FIELDS_WITH_METADATA,
    MESSAGES: IGNORED_FIELDS_WITH_METADATA,
}


def directives(request) -> tuple[bool, bool]:
    """
    Whether the request may be answered from the cache, and whether its
    answer may be stored, by its C{Cache-Control}: C{no-cache} skips the
    lookup (the answer is fresh, and kept), C{no-store} skips both.
    """
    read = write = True
    for value in request.requestHeaders.getRawHeaders(b"cache-control", ()):
        for token in value.lower().split(b","):
            token = token.strip()
            if token == b"no-store":
                return False, False
            if token == b"no-cache":
                read = False
    return read, write


def _cacheable(call: Call) -> bool:
    """
    Whether a request's answer can be kept and given again as it came:
    not several choices or log probabilities (a stored L{Reply} holds one
    choice's content, which a stream replay would give for them), not a
    legacy completion stream (whose replay llmedge does not write).
    """
    body = call.body
    if call.endpoint == COMPLETIONS:
        return not call.stream
    if call.endpoint == CHAT:
        n = body.get("n")
        return (n is None or n == 1) and not body.get("logprobs") and not body.get("top_logprobs")
    return True


@dataclass(eq=False)
class Visit:
    """
    What the cache said about one request, and what it may do with the
    request's answer.

    @ivar result: C{hit}, C{miss} or C{bypass}.
    @ivar data: the stored entry, for a hit.
    @ivar flight: set when this request leads a single flight: identical
        requests wait for what it keeps.
    """

    result: str
    data: bytes | None = None
    key: str | None = None
    flight: Flight | None = None
    cache: ResponseCache | None = field(default=None, repr=False)

    def keep(self, entry: entries.Entry) -> None:
        """
        The request's answer was a complete 200: store it and hand it to
        the requests waiting.
        """
        if self.cache is None or self.key is None:
            return
        data = entries.dumps(entry)
        cache, self.cache = self.cache, None
        if len(data) > cache.max_entry:
            self._land(None)
            return
        self._land(data)
        cache.put(self.key, data)

    def abandon(self) -> None:
        """
        The request is over without an answer to keep: whoever waits on
        it goes upstream.
        """
        self.cache = None
        self._land(None)

    def _land(self, data: bytes | None) -> None:
        flight, self.flight = self.flight, None
        if flight is not None:
            flight.land(data)

    def missed(self) -> Visit:
        """
        This hit's entry cannot answer the request (unreadable, or it
        lacks what the request asks for): go upstream, and store anew.
        """
        return Visit(MISS, key=self.key, cache=self.cache)


BYPASS_VISIT = Visit(BYPASS)


class _Replayed:
    """
    The timer of a hit replayed as a stream: no provider was called, so
    there is nothing to time or count.
    """

    def first_event(self) -> None:
        pass

    def done(self, outcome: str, usage: object = None) -> None:
        pass

    def failed(self, reason: Failure) -> None:
        pass


REPLAYED = _Replayed()


class ResponseCache:
    """
    The cache as the requests see it: a store, how long entries live,
    whose entries a request may read, and the flights in the air.

    @param scope: C{"key"} (an API key reads only its own entries) or
        C{"global"}.
    @param max_entry: the largest entry kept, in bytes; larger answers
        are given to their client and forgotten.
    """

    _log = Logger()

    def __init__(self, store: ICacheStore, flights: Flights, ttl: float, scope: str,
                 max_entry: int) -> None:
        self.store = store
        self.flights = flights
        self.ttl = ttl
        self.per_key = scope == "key"
        self.max_entry = max_entry

    def key(self, request, call: Call) -> str:
        """
        The request's cache key: its scope, its route (with the Anthropic
        version and betas it asked for, which change the answer) and its
        body.
        """
        scope = "global"
        if self.per_key and request.api_key is not None:
            scope = "key:" + request.api_key.id
        route = call.endpoint
        if call.client_headers:
            route += "\n" + json.dumps(call.client_headers, sort_keys=True)
        return cache_key(scope, route, call.body, _IGNORED[call.endpoint])

    def consult(self, request, call: Call, enabled: bool) -> Deferred[Visit]:
        """
        Decide what the cache does for C{request}; the L{Visit} fires once
        the store (or the flight this request waits on) has answered.

        @param enabled: whether the model's answers may be cached.
        """
        if not enabled or call.endpoint not in _IGNORED or not _cacheable(call):
            return succeed(BYPASS_VISIT)
        read, write = directives(request)
        if not write:
            return succeed(BYPASS_VISIT)
        key = self.key(request, call)
        if not read:
            return succeed(Visit(MISS, key=key, cache=self))
        waiting = self.flights.follow(key)
        if waiting is not None:
            return request.track(waiting).addCallback(self._waited, key)
        flight = self.flights.take_off(key)
        visit = Visit(MISS, key=key, flight=flight, cache=self)
        # However the request ends, those waiting on it are told.
        request.notifyFinish().addBoth(lambda _: visit.abandon())
        found = self.store.get(key)
        found.addCallbacks(self._found, self._unavailable, (visit,), None, (visit,))
        return found

    def _waited(self, data: bytes | None, key: str) -> Visit:
        if data is None:
            # The first request kept nothing: this one asks for itself.
            return Visit(MISS, key=key, cache=self)
        return Visit(HIT, data, key, cache=self)

    def _found(self, data: bytes | None, visit: Visit) -> Visit:
        if data is None:
            return visit
        visit._land(data)
        return Visit(HIT, data, visit.key, cache=self)

    def _unavailable(self, reason: Failure, visit: Visit) -> Visit:
        visit.abandon()
        if not reason.check(CacheUnavailable):
            self._log.failure("The response cache failed a lookup; answering without it",
                              reason)
        return BYPASS_VISIT

    def put(self, key: str, data: bytes) -> None:
        stored = self.store.put(key, data, self.ttl)
        stored.addErrback(self._not_stored)

    def _not_stored(self, reason: Failure) -> None:
        if not reason.check(CacheUnavailable):  # (the store logs its outages)
            self._log.failure("The response cache failed to store an answer", reason)


def reply_of(call: Call, answer, body: bytes) -> Reply | None:
    """
    The L{Reply} a whole answer stands for, when the route's dialect can
    replay it: the provider's own, or read back from the document.
    """
    if isinstance(answer, Reply):
        return answer
    if call.endpoint not in (CHAT, MESSAGES, RESPONSES):
        return None
    if isinstance(answer, Answer):
        document = answer.document if answer.document is not None else json.loads(body)
    else:
        document = answer
    if call.endpoint == CHAT:
        return chat_reply.decode_reply(document)
    if call.endpoint == MESSAGES:
        return messages_reply.decode_reply(document)
    return responses_read.decode_reply(document)


def whole_entry(call: Call, answer, body: bytes) -> entries.Entry | None:
    """
    The entry of a whole answer, or L{None} when it cannot be read back.

    A Responses document echoes the asking request (its C{metadata},
    C{user}, instructions, tools), so a hit re-encodes it from its
    L{Reply} with the new request's values rather than writing the old
    bytes.
    """
    try:
        reply = reply_of(call, answer, body)
    except (ValueError, TypeError, KeyError):
        return None
    if call.endpoint == RESPONSES:
        return entries.Entry(reply, None) if reply is not None else None
    return entries.Entry(reply, body)


def recording(stream, call: Call, visit: Visit, max_bytes: int):
    """
    C{stream}, read on its way to the client so that, if it reaches its
    end, the answer it adds up to is kept.
    """
    if IReplyStream.providedBy(stream):
        reader = EventReader()
    elif call.endpoint == CHAT:
        reader = ChatChunkReader()
    elif call.endpoint == MESSAGES:
        reader = MessagesReader()
    elif call.endpoint == RESPONSES:
        reader = ResponsesReader()
    else:
        return stream
    return recorded(stream, reader, max_bytes,
                    lambda reply: visit.keep(entries.Entry(reply, None)))
