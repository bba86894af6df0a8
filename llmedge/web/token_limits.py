# -*- test-case-name: tests.unit.test_token_limits -*-
"""
Tokens per minute per API key: reserve before the call, settle after it.

A request's cost in tokens is known only when its answer (or the stream's
usage chunk) arrives, but it must be admitted or refused before the
provider is called. So L{TokenLimiter} reserves the most the request can
use — its prompt, estimated with the mock's tokenizer approximation
(L{llmedge.tokens}), plus its C{max_tokens} (or
C{max_completion_tokens}, times C{n}; C{rate_limit.default_max_tokens}
when it sets none) — in the key's token bucket, and when the request ends
settles on the C{usage} the provider reported: the difference is given
back (or, for an estimate that fell short, charged). A request that failed
before an answer gives the whole reservation back; one whose answer
reported no usage keeps it, as does one that timed out or whose client
left (the provider may have worked for it).

The bucket is the same GCRA as requests per minute, in the same store
(memory, the workers' shared table, or Redis), with the bucket
C{tokens:<key id>}, a minute's worth of tokens as its burst, and one token
per C{60 / tokens_per_minute} seconds of refill. Responses carry
C{x-ratelimit-limit-tokens}, C{x-ratelimit-remaining-tokens} and
C{x-ratelimit-reset-tokens}, as OpenAI's do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from llmedge.errors import APIError, rate_limited, token_budget_exceeded
from llmedge.limits.gcra import Decision, Limit, format_duration, retry_after_header
from llmedge.limits.store import IRateLimitStore
from llmedge.providers.base import CHAT, COMPLETIONS, EMBEDDINGS, MESSAGES, RESPONSES
from llmedge.tokens import count_message_tokens, count_tokens


def _text_tokens(value: Any) -> int:
    if isinstance(value, str):
        return count_tokens(value)
    if isinstance(value, list):
        # lists of strings, or of token ids (one token each)
        return sum(count_tokens(v) if isinstance(v, str) else 1 for v in value)
    return 0


def estimate(endpoint: str, body: Mapping[str, Any], default_max_tokens: int) -> int:
    """
    The most tokens a validated request can use: its prompt plus the
    completion it allows.
    """
    if endpoint == EMBEDDINGS:
        return max(1, _text_tokens(body.get("input")))
    if endpoint in (MESSAGES, RESPONSES):
        # The prompt's JSON text, a little more than its tokens: the
        # estimate is settled on the usage the answer reports.
        fields = ("system", "messages", "tools") if endpoint == MESSAGES else (
            "instructions", "input", "tools")
        prompt = sum(count_tokens(json.dumps(body.get(f))) for f in fields if body.get(f))
        most = body.get("max_tokens" if endpoint == MESSAGES else "max_output_tokens")
        if not isinstance(most, int) or isinstance(most, bool) or most < 1:
            most = default_max_tokens
        return max(1, prompt + most)
    if endpoint == CHAT:
        prompt = count_message_tokens(body.get("messages") or ())
        most = body.get("max_completion_tokens") or body.get("max_tokens")
    else:
        prompt = _text_tokens(body.get("prompt"))
        most = body.get("max_tokens")
    if not isinstance(most, int) or isinstance(most, bool) or most < 1:
        most = default_max_tokens
    choices = body.get("n") if endpoint in (CHAT, COMPLETIONS) else 1
    if not isinstance(choices, int) or isinstance(choices, bool) or choices < 1:
        choices = 1
    return max(1, prompt + most * choices)




class TokenLimiter:
    """
    Reserve and settle the tokens of each keyed request.

    @param default_per_minute: the budget of keys that set none (0: keys
        without their own C{tokens_per_minute} are not limited).
    @param default_max_tokens: the completion reserved for a request that
        sets no C{max_tokens}.
    """

    _log = Logger()

    def __init__(self, store: IRateLimitStore, default_per_minute: int,
                 default_max_tokens: int) -> None:
        self._store = store
        self._default = default_per_minute
        self._default_max_tokens = default_max_tokens
        self._limits: dict[int, Limit] = {}

    def limit_for(self, key) -> Limit | None:
        """
        The token bucket's shape for C{key}, or L{None}: no key, or no budget.
        """
        if key is None:
            return None
        per_minute = key.tokens_per_minute or self._default
        if not per_minute:
            return None
        limit = self._limits.get(per_minute)
        if limit is None:
            limit = self._limits[per_minute] = Limit(per_minute=per_minute, burst=per_minute)
        return limit

    def reserve(self, request, endpoint: str, body: Mapping[str, Any]) -> Deferred:
        """
        Reserve the request's tokens: fires with L{None} to go on (the
        token headers set), or with the L{APIError} to answer.
        """
        limit = self.limit_for(request.api_key)
        if limit is None:
            return succeed(None)
        needed = estimate(endpoint, body, self._default_max_tokens)
        if needed > limit.burst:
            return succeed(token_budget_exceeded(needed, limit.per_minute))
        bucket = "tokens:" + request.api_key.id
        d = self._store.acquire(bucket, limit, needed)
        return d.addCallback(self._decided, request, bucket, limit, needed)

    def _decided(self, decision: Decision, request, bucket: str, limit: Limit,
                 needed: int) -> APIError | None:
        headers = [
            (b"x-ratelimit-limit-tokens", b"%d" % (limit.burst,)),
            (b"x-ratelimit-remaining-tokens", b"%d" % (decision.remaining,)),
            (b"x-ratelimit-reset-tokens", format_duration(decision.reset_after).encode("ascii")),
        ]
        if not decision.allowed:
            retry = b"%d" % (retry_after_header(decision.retry_after),)
            return rate_limited(
                f"Rate limit reached for tokens per minute: limit {limit.per_minute}, "
                f"this request reserves {needed}. Retry after the time in Retry-After.",
                [*headers, (b"Retry-After", retry)])
        for name, value in headers:
            request.setHeader(name, value)
        request.notifyFinish().addBoth(self._settle, request, bucket, limit, needed)
        return None

    def _settle(self, _, request, bucket: str, limit: Limit, reserved: int) -> None:
        """
        The request ended: settle on what it used. Refused or failed
        upstream (an error status, or no provider reached): all of it back.
        Answered: the usage reported, or, without one, the reservation
        stands. Timed out, abandoned by its client, or answered in a form
        llmedge refused (malformed, too large): the provider may have worked
        for it, so the reservation stands (or what usage says, if more).
        """
        exchange = request.exchange
        used = (exchange.prompt_tokens or 0) + (exchange.completion_tokens or 0)
        if exchange.outcome in (None, "error", "unreachable"):
            used = 0
        elif not used or (exchange.outcome != "ok" and used < reserved):
            return
        if used != reserved:
            self._store.adjust(bucket, limit, used - reserved)
