"""
Property-based fuzzing: the request validators with arbitrary JSON, the
whole resource tree with bodies of the right shape and arbitrary values at
every depth, and the event-stream reader and relay with arbitrary bytes
split anywhere.

Runs are bounded (C{max_examples}, no deadline) so the suite stays fast.
"""

from __future__ import annotations

from typing import Any

import json
from random import Random

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.defer import succeed
from twisted.logger import globalLogPublisher
from twisted.web.http_headers import Headers

from llmedge.errors import APIError
from llmedge.providers.events import SSEReader
from llmedge.validation import validate_chat, validate_completion, validate_embedding
from llmedge.web.sse import DONE, event, relay

BOUNDED = settings(max_examples=100, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow])

# -- the validators ----------------------------------------------------------------

#: What json.loads can make of a body the parser lets through (NaN is
#: refused there; 1e400 becomes infinity).
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(),
    st.floats(allow_nan=False), st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=20,
)

FIELDS = [
    "model", "messages", "prompt", "input", "role", "content", "temperature", "top_p", "n",
    "max_tokens", "max_completion_tokens", "stream", "stream_options", "include_usage",
    "stop", "seed", "user", "logit_bias", "top_logprobs", "logprobs", "response_format",
    "type", "tools", "tool_choice", "tool_call_id", "name", "best_of", "echo", "suffix",
    "encoding_format", "dimensions", "presence_penalty", "frequency_penalty",
]
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool", "function"])

#: Bodies shaped like requests, so the checks deep inside are reached too.
messages = st.lists(
    st.fixed_dictionaries({"role": ROLES | json_values},
                          optional={"content": json_values, "tool_call_id": json_values,
                                    "name": json_values}) | json_values,
    max_size=3,
)
bodies = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6),
    st.fixed_dictionaries(
        {"model": st.just("mock") | json_values},
        optional={key: json_values for key in FIELDS if key != "model"}
        | {"messages": messages},
    ),
)


def check(validate, body: Any) -> None:
    try:
        returned = validate(body)
    except APIError as error:
        assert error.status == 400
        assert error.type == "invalid_request_error"
        if isinstance(body, dict):
            assert isinstance(error.param, str) and error.param
        assert len(error.message) < 400  # a bad value is never echoed whole
        error.body()  # and the error itself can be sent
    else:
        assert returned is body


@BOUNDED
@given(bodies)
def test_chat_validator_accepts_or_raises_a_400_naming_the_field(body):
    check(validate_chat, body)


@BOUNDED
@given(bodies)
def test_completion_validator_accepts_or_raises_a_400_naming_the_field(body):
    check(validate_completion, body)


@BOUNDED
@given(bodies)
def test_embedding_validator_accepts_or_raises_a_400_naming_the_field(body):
    check(validate_embedding, body)


# -- the resource tree: no body of the right shape gets a 500 ------------------------

KEY = "sk-fuzz"

#: Finite values only: json.dumps would write infinity as a bare Infinity,
#: which the body parser refuses before anything else looks at it.
finite = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
anything = st.recursive(
    finite,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=3),
    max_leaves=12,
)

#: What a bent place gets: any JSON value, leaning towards the ones code
#: written for a string trips on (values that are true but not strings),
#: as hypothesis leans towards null, false, 0 and "" otherwise.
wild = st.one_of(
    st.lists(anything, min_size=1, max_size=3),
    st.dictionaries(st.text(max_size=8), anything, min_size=1, max_size=3),
    st.integers().filter(bool), st.floats(allow_nan=False, allow_infinity=False).filter(bool),
    st.just(True), anything,
)

text = st.text(max_size=30)
short = st.text(max_size=3)
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": text})
part = st.one_of(
    text_part, text_part,
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": text | st.fixed_dictionaries(
        {"url": text}, optional={"detail": st.sampled_from(["auto", "low", "high"])})}),
    st.fixed_dictionaries({"type": st.just("input_audio"), "input_audio": st.fixed_dictionaries(
        {"data": text, "format": st.sampled_from(["wav", "mp3"])})}),
    st.fixed_dictionaries({"type": st.just("file"), "file": st.fixed_dictionaries(
        {}, optional={"file_data": text, "file_id": short, "filename": short})}),
    st.fixed_dictionaries({"type": st.just("refusal"), "refusal": text}),
    st.fixed_dictionaries({"type": short}, optional={"more": anything}),
)
arguments = st.just("{}") | st.dictionaries(short, anything, max_size=2).map(json.dumps)
tool_call = st.fixed_dictionaries({"id": short, "type": st.just("function"),
                                   "function": st.fixed_dictionaries(
                                       {"name": short, "arguments": arguments})})
message = st.one_of(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "system", "developer", "function"]),
         "content": st.lists(part, min_size=1, max_size=3) | text},
        optional={"name": short}),
    st.fixed_dictionaries(
        {"role": st.just("assistant")},
        optional={"content": st.lists(part, min_size=1, max_size=3) | text,
                  "tool_calls": st.lists(tool_call, max_size=2)}),
    st.fixed_dictionaries({"role": st.just("tool"), "tool_call_id": short, "content": text}),
)
declaration = st.fixed_dictionaries({"name": short}, optional={
    "description": text, "parameters": st.dictionaries(short, anything, max_size=2),
    "strict": st.booleans()})
sampling = {
    "n": st.integers(1, 4), "max_tokens": st.integers(1, 40),
    "max_completion_tokens": st.integers(1, 40), "stream": st.booleans(),
    "stop": short | st.lists(short, min_size=1, max_size=4),
    "temperature": st.floats(0, 2), "top_p": st.floats(0, 1),
    "seed": st.integers(-(2**63), 2**63 - 1), "user": short,
    "logit_bias": st.dictionaries(short, st.integers(-100, 100), max_size=2),
    "response_format": st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "json_object", "json_schema"])},
        optional={"json_schema": st.fixed_dictionaries({"name": short},
                                                       optional={"schema": st.just({})})}),
    "tools": st.lists(st.fixed_dictionaries({"type": st.just("function"),
                                             "function": declaration}), max_size=2),
    "tool_choice": st.sampled_from(["auto", "none", "required"]) | st.fixed_dictionaries(
        {"type": st.just("function"), "function": st.fixed_dictionaries({"name": short})}),
    "parallel_tool_calls": st.booleans(),
}
token_ids = st.lists(st.integers(0, 50), min_size=1, max_size=5)
words = st.text(min_size=1, max_size=30)
ENDPOINTS = {
    "/v1/chat/completions": st.fixed_dictionaries(
        {"model": st.just("mock"), "messages": st.lists(message, min_size=1, max_size=4)},
        optional={**sampling, "stream_options": st.fixed_dictionaries(
            {"include_usage": st.booleans()}), "logprobs": st.booleans(),
            "top_logprobs": st.integers(0, 20)}),
    "/v1/completions": st.fixed_dictionaries(
        {"model": st.just("mock"), "prompt": text | st.lists(text, min_size=1, max_size=3)
         | token_ids | st.lists(token_ids, min_size=1, max_size=3)},
        optional={**sampling, "echo": st.booleans(), "suffix": short,
                  "best_of": st.integers(4, 6), "logprobs": st.integers(0, 5)}),
    "/v1/embeddings": st.fixed_dictionaries(
        {"model": st.just("mock"), "input": words | st.lists(words, min_size=1, max_size=3)
         | token_ids | st.lists(token_ids, min_size=1, max_size=3)},
        optional={"dimensions": st.integers(1, 64) | st.integers(1, 20_000),
                  "encoding_format": st.sampled_from(["float", "base64"]), "user": short}),
}


def _places(value, places: list, depth: int = 1) -> list:
    """
    Every (container, key, depth) of C{value}, at every depth.
    """
    for key in list(value) if isinstance(value, dict) else range(len(value)):
        places.append((value, key, depth))
        if isinstance(value[key], (dict, list)):
            _places(value[key], places, depth + 1)
    return places


@st.composite
def bent(draw, right: st.SearchStrategy):
    """
    A request of the right shape with one or two of its values, at any
    depth, replaced by any JSON value (or removed): the rest of the body is
    right, so what follows the check a wrong value meets is reached too.
    """
    body = draw(right)
    # Seeded by the body too: hypothesis draws seed 0 (and every simplest
    # choice) for many examples, which would bend the same place each time.
    random = Random(json.dumps([body, draw(st.integers())], sort_keys=True))
    for _ in range(1 if random.random() < 0.7 else 2):
        places = _places(body, [])
        # Deeper places are likelier: there the checks are fewer and later.
        (container, key, _), = random.choices(places, [depth**3 for _, _, depth in places])
        if isinstance(container, dict) and random.random() < 0.1:
            del container[key]
        else:
            container[key] = draw(wild)
    return body


_site = None


def site():
    """
    One service for every example (building one per example would be most
    of the run): the mock provider behind authentication and token limits.
    """
    global _site
    if _site is None:
        from tests.unit.support import Harness

        _site = Harness({
            "AUTH_ENABLED": "true", "API_KEYS": KEY, "RATE_LIMIT_ENABLED": "true",
            "RATE_LIMIT_RPM": "100000000", "RATE_LIMIT_BURST": "100000000",
            "RATE_LIMIT_TPM": "1000000000",
        })
    return _site


def post_and_check(path: str, body) -> None:
    """
    POST C{body} to C{path}: the answer is a success or a client error in
    OpenAI's shape, and nothing was logged as a failure on the way.
    """
    failures = []
    observer = failures.append
    globalLogPublisher.addObserver(observer)
    try:
        response = site().request("POST", path, json.dumps(body).encode(), headers={
            "Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    finally:
        globalLogPublisher.removeObserver(observer)
    assert response.status in (200, 400, 404, 429), (response.status, response.body[:300])
    assert response.complete
    if response.status != 200:
        error = response.json()["error"]
        assert error["type"] in ("invalid_request_error", "rate_limit_error"), error
    logged = [e for e in failures if "log_failure" in e or (
        e.get("log_level") is not None and e["log_level"].name in ("error", "critical"))]
    assert not logged, logged[0].get("log_failure") or logged[0]


FUZZ = settings(max_examples=500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(bent(ENDPOINTS["/v1/chat/completions"]))
def test_chat_bodies_of_any_values_never_get_a_500(body):
    post_and_check("/v1/chat/completions", body)


@FUZZ
@given(bent(ENDPOINTS["/v1/completions"]))
def test_completion_bodies_of_any_values_never_get_a_500(body):
    post_and_check("/v1/completions", body)


@FUZZ
@given(bent(ENDPOINTS["/v1/embeddings"]))
def test_embedding_bodies_of_any_values_never_get_a_500(body):
    post_and_check("/v1/embeddings", body)


# -- the event-stream reader -----------------------------------------------------


def read(chunks: list[bytes]) -> list[tuple[bytes | None, bytes]]:
    events: list[tuple[bytes | None, bytes]] = []
    reader = SSEReader(lambda name, data: events.append((name, data)))
    for chunk in chunks:
        reader.dataReceived(chunk)
    return events


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


#: Bytes with plenty of what the reader looks for.
stream_bytes = st.lists(
    st.sampled_from([b"data:", b"data: ", b"event: ", b":", b"\n", b"\r\n", b"\r", b" ",
                     b"{}", b"[DONE]", b"id: 1", b"x"]) | st.binary(max_size=8),
    max_size=40,
).map(b"".join)


@BOUNDED
@given(stream_bytes, st.lists(st.integers(min_value=0), max_size=12))
def test_reader_gives_the_same_events_however_the_bytes_are_split(data, cuts):
    assert read(split(data, cuts)) == read([data])


@BOUNDED
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=30))
def test_reader_survives_arbitrary_bytes_split_anywhere(data, cuts):
    assert read(split(data, cuts)) == read([data])


# -- the relay ---------------------------------------------------------------------


class FakeTimer:
    def first_event(self) -> None:
        pass

    def done(self, outcome, usage=None) -> None:
        pass

    def failed(self, reason) -> None:
        pass


class FakeExchange:
    error_code = None


class FakeRequest:
    """
    Just what L{relay} uses of a request.
    """

    _disconnected = False
    finished = False

    def __init__(self) -> None:
        self.responseHeaders = Headers()
        self.written: list[bytes] = []
        self.exchange = FakeExchange()

    def setResponseCode(self, code) -> None:
        self.code = code

    def setHeader(self, name, value) -> None:
        self.responseHeaders.setRawHeaders(name, [value])

    def write(self, data) -> None:
        self.written.append(data)

    def registerProducer(self, producer, streaming) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def track(self, work):
        return work

    def finish(self) -> None:
        self.finished = True


class FakeStream:
    headers = ()
    usage = None

    def __init__(self, payloads: list[bytes]) -> None:
        self.payloads = payloads

    def start(self, deliver):
        for payload in self.payloads:
            deliver(payload)
        return succeed(None)


#: Event data as providers' compact JSON is: no line breaks.
payloads = st.lists(
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"").replace(b"\r", b"")),
    max_size=8,
)


@BOUNDED
@given(payloads, st.lists(st.integers(min_value=0), max_size=12))
def test_relayed_stream_reads_back_as_the_same_events_split_anywhere(sent, cuts):
    request = FakeRequest()
    relay(request, FakeStream(sent), FakeTimer())
    assert request.finished
    body = b"".join(request.written)
    assert body.endswith(DONE)
    assert read(split(body, cuts)) == [(None, p) for p in [*sent, b"[DONE]"]]


def test_event_framing_is_one_data_line_and_a_blank_line():
    assert event(b"{}") == b"data: {}\n\n"
