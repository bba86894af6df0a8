# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
The embedded mock provider: the default backend clients develop against.

It answers every endpoint in OpenAI's exact shape with deterministic content
derived from the request, so client tests are reproducible, and it honours
the fields clients most often test their handling of (C{max_tokens}, C{stop},
C{n}, C{response_format}, C{stream_options}, C{dimensions},
C{encoding_format}; a C{tool_choice} that forces a function is answered
with a call of it, arguments C{{}}). Clients of the Responses and Messages
dialects are answered the same way, through their codecs
(L{llmedge.providers.mock_dialects}). Usage numbers come from L{llmedge.tokens}, so
they agree with the content and with each other. The work one request may
make it do is bounded (L{llmedge.providers.mock_bounds}).

Everything is timed by the injected reactor: an optional C{latency} before
the answer and a C{stream_interval} between events. Streams deliver one
event per reactor call, even with an interval of 0, so a slow client's
back-pressure (C{pauseProducing}) really stops delivery.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from zope.interface import implementer

from llmedge.providers import mock_bounds as bounds
from llmedge.providers.base import Answer, Call, IProvider
from llmedge.providers.chunks import completion_chunks
from llmedge.providers.mock_dialects import conversed, forced_tool, tool_call_document
from llmedge.providers.mock_embeddings import embeddings_body
from llmedge.providers.paced import PacedStream
from llmedge.randomness import random_hex
from llmedge.tokens import count_message_tokens, count_tokens, first_tokens, split_tokens

FINGERPRINT = "fp_llmedge_mock"
GREETING = "Hello from the llmedge mock provider."
# OpenAI's legacy completions endpoint defaults max_tokens to 16.
COMPLETION_DEFAULT_MAX_TOKENS = 16


def _text_of(content: Any) -> str:
    """
    The text of a message's content; text parts are joined with spaces.
    """
    if content is None or isinstance(content, str):
        return content or ""
    return " ".join(p["text"] for p in content if p.get("type") == "text")


def _limit(text: str, max_tokens: int | None, stop: Any) -> tuple[str, str]:
    """
    Apply C{stop} then C{max_tokens} to generated C{text}, as a model would
    meet them while generating: return the content and its finish reason.
    """
    stops = [stop] if isinstance(stop, str) else [s for s in stop or () if s]
    cuts = [text.find(s) for s in stops if s and s in text]
    if cuts:
        text = text[: min(cuts)]
    if max_tokens is not None:
        cut = first_tokens(text, max_tokens)
        if cut is not None:
            return cut, "length"
    return text, "stop"


def _first_set(body: dict, *names: str, default: Any = None) -> Any:
    """
    The first of C{names} given a non-null value in C{body}.
    """
    return next((body[k] for k in names if body.get(k) is not None), default)


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


_ROLE_DELTA = '{"index":%d,"delta":{"role":"assistant","content":"","refusal":null},' \
    '"logprobs":null,"finish_reason":null}'
_CONTENT_DELTA = '{"index":%d,"delta":{"content":%s},"logprobs":null,"finish_reason":null}'
_LAST_DELTA = '{"index":%d,"delta":{},"logprobs":null,"finish_reason":%s}'
_TEXT_DELTA = '{"text":%s,"index":%d,"logprobs":null,"finish_reason":%s}'


def _chat_deltas(index: int, content: str, finish: str) -> list[str]:
    """
    The chunk choices (as JSON) for one chat choice: role, one delta per
    token piece, then the finish reason on an empty delta, as OpenAI
    streams them. Written from templates: a stream has a chunk per token,
    and serialising each as a dict cost 6 microseconds, a template 0.4.
    """
    return [
        _ROLE_DELTA % index,
        *(_CONTENT_DELTA % (index, json.dumps(piece)) for piece in split_tokens(content)),
        _LAST_DELTA % (index, json.dumps(finish)),
    ]


def _text_deltas(index: int, text: str, finish: str) -> list[str]:
    """
    The chunk choices (as JSON) for one legacy completion choice: one per
    token piece, then an empty text carrying the finish reason.
    """
    return [
        *(_TEXT_DELTA % (json.dumps(piece), index, "null") for piece in split_tokens(text)),
        _TEXT_DELTA % ('""', index, json.dumps(finish)),
    ]


def _inputs(value: Any, render: Callable[[list], str]) -> list[tuple[str, int]]:
    """
    Normalise a C{prompt} or C{input} (string, strings, token ids, lists of
    token ids) to C{(text, tokens)} pairs; a token-id list counts as its
    length and reads as C{render(ids)}.
    """
    if isinstance(value, str):
        return [(value, count_tokens(value))]
    if value and all(isinstance(v, int) for v in value):
        value = [value]
    return [
        (v, count_tokens(v)) if isinstance(v, str) else (render(v), len(v))
        for v in value
    ]


@implementer(IProvider)
class MockProvider:
    """
    Answer every endpoint locally and deterministically.

    The answer is built when the call arrives (so C{created} is the request
    time, as with OpenAI) and handed over after C{latency} seconds; cancelling
    the returned Deferred during that wait cancels the timer.

    @ivar name: the provider's configured name.
    """

    def __init__(
        self,
        reactor,
        name: str = "mock",
        embedding_dimensions: int = 1536,
        stream_interval: float = 0.0,
        latency: float = 0.0,
        id_factory: Callable[[], str] | None = None,
    ) -> None:
        self.name = name
        self._reactor = reactor
        self._dimensions = embedding_dimensions
        self._interval = stream_interval
        self._latency = latency
        self._new_id = id_factory or (lambda: random_hex(16))

    def chat_completion(self, call: Call, model: str) -> Deferred:
        return self._answer(lambda: self._chat(call.body, model, call.stream))

    def completion(self, call: Call, model: str) -> Deferred:
        return self._answer(lambda: self._completion(call.body, model, call.stream))

    def embedding(self, call: Call, model: str) -> Deferred:
        return self._answer(lambda: self._embedding(call.body, model))

    def responses(self, call: Call, model: str) -> Deferred:
        return self._answer(lambda: conversed(
            self._chat, call.conversation, model, self._reactor, self._interval))

    messages = responses

    def count_tokens(self, call: Call, model: str) -> Deferred:
        return succeed(None)  # llmedge's estimate is the mock's count

    def _answer(self, build: Callable[[], Any]) -> Deferred:
        try:
            result = build()
        except Exception:
            return fail()
        if self._latency <= 0:
            return succeed(result)
        d = Deferred(lambda d: delayed.cancel())
        delayed = self._reactor.callLater(self._latency, d.callback, result)
        return d

    def _head(self, prefix: str, kind: str, model: str) -> dict[str, Any]:
        return {
            "id": prefix + self._new_id(),
            "object": kind,
            "created": int(self._reactor.seconds()),
            "model": model,
            "system_fingerprint": FINGERPRINT,
        }

    def _stream(self, head, choices, body, usage) -> PacedStream:
        """
        One event per chunk choice (JSON text); with C{include_usage},
        every chunk carries C{"usage": null} and a last, choiceless chunk
        the usage. Each event is the head's JSON around its choice, the
        same bytes as serialising the whole chunk, made once per stream.
        """
        include = (body.get("stream_options") or {}).get("include_usage") is True
        opening = json.dumps(head, separators=(",", ":"))[:-1] + ',"choices":['
        closing = '],"usage":null}' if include else "]}"
        events = [(opening + choice + closing).encode() for choice in choices]
        if include:
            last = {**head, "choices": [], "usage": usage}
            events.append(json.dumps(last, separators=(",", ":")).encode())
        return PacedStream(self._reactor, self._interval, events, usage)

    def _chat(self, body: dict, model: str, stream: bool):
        """
        Reply "You said: <last user text>", as JSON when a JSON response
        format is asked for, the same in each of the C{n} choices.
        """
        messages = body["messages"]
        items, chars = bounds.chat_size(messages)
        bounds.read_at_most(chars, "messages", items)
        tool = forced_tool(body)
        if tool is not None:
            head = self._head("chatcmpl-", "chat.completion", model)
            document = tool_call_document(head, body, tool, "call_" + self._new_id()[:24])
            if not stream:
                return document
            include = (body.get("stream_options") or {}).get("include_usage") is True
            return PacedStream(self._reactor, self._interval,
                               completion_chunks(document, include), document["usage"])
        users = [m for m in messages if m["role"] == "user"]
        text = f"You said: {_text_of(users[-1].get('content'))}" if users else GREETING
        if (body.get("response_format") or {}).get("type") in (
            "json_object", "json_schema"
        ):
            text = json.dumps({"reply": text})
        limit = _first_set(body, "max_completion_tokens", "max_tokens")
        content, finish = _limit(text, limit, body.get("stop"))
        n = body.get("n") or 1
        tokens = count_tokens(content)
        bounds.answer_at_most([(content, tokens)], n, stream, "Lower max_tokens or n.")
        usage = _usage(count_message_tokens(messages), n * tokens)
        kind = "chat.completion.chunk" if stream else "chat.completion"
        head = self._head("chatcmpl-", kind, model)
        if stream:
            deltas = [c for i in range(n) for c in _chat_deltas(i, content, finish)]
            return self._stream(head, deltas, body, usage)
        message = {"role": "assistant", "content": content, "refusal": None}
        choices = [
            {"index": i, "message": dict(message), "logprobs": None,
             "finish_reason": finish}
            for i in range(n)
        ]
        return {**head, "choices": choices, "usage": usage}

    def _completion(self, body: dict, model: str, stream: bool):
        """
        Complete each prompt with " This is a mock completion of: <prompt>"
        (token-id prompts read as "<N tokens>"), C{n} times per prompt;
        C{echo} puts the prompt before the generated text, outside
        C{max_tokens}, C{stop} and the completion token count.
        """
        bounds.read_at_most(bounds.prompt_size(body["prompt"]), "prompt")
        prompts = _inputs(body["prompt"], lambda ids: f"<{len(ids)} tokens>")
        n = body.get("n") or 1
        bounds.choices_at_most(len(prompts), n)
        limit = _first_set(body, "max_tokens", default=COMPLETION_DEFAULT_MAX_TOKENS)
        echo = body.get("echo") is True
        texts, generated_tokens = [], 0
        for prompt, prompt_tokens in prompts:
            generated, finish = _limit(
                f" This is a mock completion of: {prompt}", limit, body.get("stop")
            )
            tokens = count_tokens(generated)
            generated_tokens += n * tokens
            if echo:
                # A count, not the exact tokens of the joined text: it only
                # sizes the answer, and can be one too many.
                texts.append((prompt + generated, finish, prompt_tokens + tokens))
            else:
                texts.append((generated, finish, tokens))
        bounds.answer_at_most([(text, tokens) for text, _, tokens in texts], n, stream,
                              "Lower max_tokens or n" + (", or leave echo off." if echo else "."))
        results = [(text, finish) for text, finish, _ in texts for _ in range(n)]
        usage = _usage(sum(tokens for _, tokens in prompts), generated_tokens)
        head = self._head("cmpl-", "text_completion", model)
        if stream:
            deltas = [
                c for i, (text, finish) in enumerate(results)
                for c in _text_deltas(i, text, finish)
            ]
            return self._stream(head, deltas, body, usage)
        choices = [
            {"text": text, "index": i, "logprobs": None, "finish_reason": finish}
            for i, (text, finish) in enumerate(results)
        ]
        return {**head, "choices": choices, "usage": usage}

    def _embedding(self, body: dict, model: str) -> Answer:
        """
        One unit vector per input, from a hash of its text (token-id inputs:
        their JSON text), written straight as JSON (L{mock_embeddings}):
        large batches are common, and a document of millions of floats
        would take seconds to make and serialise.
        """
        dimensions = body.get("dimensions") or self._dimensions
        as_base64 = body.get("encoding_format") == "base64"
        bounds.read_at_most(bounds.prompt_size(body["input"]), "input")
        # Validated: a string, or an array whose first item says its shape.
        one = isinstance(body["input"], str) or isinstance(body["input"][0], int)
        bounds.values_at_most(1 if one else len(body["input"]), dimensions, as_base64)
        inputs = _inputs(body["input"], json.dumps)
        tokens = sum(count for _, count in inputs)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        texts = [text for text, _ in inputs]
        return Answer(embeddings_body(texts, dimensions, as_base64, model, usage), usage)
