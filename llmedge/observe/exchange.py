# -*- test-case-name: tests.unit.test_observe -*-
"""
L{Exchange}: what happened to one request, filled in by each layer as it
learns something (the auth wrapper the key, the handler the model and
provider, the provider's answer the tokens), and read once when the request
ends, by the metrics and the access log.

One record per request keeps observation out of the request path's logic:
layers write plain attributes, nothing formats or counts until the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Routes as templates: the only values the C{route} label and log field
#: take, whatever paths clients send.
ROUTES = {
    b"/health": "/health",
    b"/health/live": "/health/live",
    b"/health/ready": "/health/ready",
    b"/metrics": "/metrics",
    b"/v1/chat/completions": "/v1/chat/completions",
    b"/v1/completions": "/v1/completions",
    b"/v1/embeddings": "/v1/embeddings",
    b"/v1/models": "/v1/models",
    b"/v1/responses": "/v1/responses",
    b"/v1/messages": "/v1/messages",
    b"/v1/messages/count_tokens": "/v1/messages/count_tokens",
}
MODEL_ROUTE = "/v1/models/{model}"
OTHER = "other"


def route_of(path: bytes) -> str:
    """
    The route template a path belongs to, or C{"other"}.
    """
    route = ROUTES.get(path)
    if route is not None:
        return route
    if path.startswith(b"/v1/models/") and len(path) > len(b"/v1/models/"):
        return MODEL_ROUTE
    return OTHER


@dataclass(slots=True)
class Exchange:
    """
    One request's story.

    @ivar started: when the request line arrived (reactor time).
    @ivar model: the model the client asked for, as sent.
    @ivar upstream_seconds: time spent waiting on the provider, from the
        call to its last byte.
    @ivar first_token_seconds: for streams, from the call to the first event.
    @ivar outcome: the provider call's end: C{ok}, C{error}, C{timeout},
        C{cancelled}, C{unreachable} (no answer came), C{malformed} (what
        came was not an answer), C{too_large} (over a bound); L{None} when
        no provider was called.
    @ivar error_code: the code (or type) of the error answered, if any.
    @ivar upstream_span_id: the span id of the provider call, when traced.
    @ivar attempts: one record per deployment asked (L{llmedge.routing}).
    @ivar strategy: the routing strategy that ordered them.
    @ivar cache: what the response cache did: C{hit}, C{miss} or C{bypass}
        (the value of C{x-llmedge-cache}); L{None} when the request never
        reached the cache step.
    """

    started: float
    request_bytes: int = 0
    model: str | None = None
    provider: str | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    upstream_seconds: float | None = None
    first_token_seconds: float | None = None
    outcome: str | None = None
    error_code: str | None = None
    trace_id: str | None = None
    span_id: str | None = None
    parent_span_id: str | None = None
    trace_sampled: bool = False
    endpoint: str | None = None
    upstream_started: float | None = None
    upstream_span_id: str | None = None
    aborted: bool = False
    attempts: list = field(default_factory=list)
    strategy: str | None = None
    cache: str | None = None

    def count_usage(self, usage: object) -> None:
        """
        Take token counts from an OpenAI C{usage} object, if it is one.
        Only counts an upstream could mean are taken (whole numbers from 0
        to L{MAX_TOKENS}): a negative or astronomic count from a broken
        upstream would make the token counter raise, and lose the request's
        metrics and access line with it.
        """
        if isinstance(usage, dict):
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if _count(prompt):
                self.prompt_tokens = prompt
            if _count(completion):
                self.completion_tokens = completion


#: The most tokens one answer is taken to have used: far above any model's
#: window, far below what a float loses precision at.
MAX_TOKENS = 2**40


def _count(value: object) -> bool:
    return type(value) is int and 0 <= value <= MAX_TOKENS
