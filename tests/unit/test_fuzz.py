"""
Property-based fuzzing: the request validators with arbitrary JSON, and the
event-stream reader and relay with arbitrary bytes split anywhere.

Runs are bounded (C{max_examples}, no deadline) so the suite stays fast.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.defer import succeed
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
