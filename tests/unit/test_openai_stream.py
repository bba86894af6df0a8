"""
Relaying OpenAI-compatible chunks: the usage read wherever OpenAI, LiteLLM
and vLLM put it, the usage llmedge asked for kept from the client, and
every relayed event one line any SDK decodes.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings, strategies as st
from openai._streaming import SSEDecoder

from llmedge.providers.events import SSEReader
from llmedge.providers.openai_stream import ChunkRelay
from llmedge.web.sse import event as frame

USAGE = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
HEAD = '"id":"c1","object":"chat.completion.chunk","created":1,"model":"m"'


def chunk(choices: str, tail: str = "") -> bytes:
    return ("{" + HEAD + ',"choices":' + choices + tail + "}").encode()


CONTENT = '[{"index":0,"delta":{"content":"hi"},"logprobs":null,"finish_reason":null}]'
EMPTY = '[{"index":0,"delta":{}}]'
FINISH = '[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]'
WITH_USAGE = ',"usage":' + json.dumps(USAGE, separators=(",", ":"))


def relay(strip_usage: bool, *events: bytes) -> tuple[ChunkRelay, list[bytes]]:
    handler = ChunkRelay(strip_usage)
    sent: list[bytes] = []
    for data in events:
        handler(None, data, sent.append)
    return handler, sent


# -- where the usage is read from ------------------------------------------------


def test_usage_is_read_from_openais_last_chunk_with_no_choices():
    handler, _ = relay(False, chunk(CONTENT, ',"usage":null'), chunk("[]", WITH_USAGE))
    assert handler.usage == USAGE


def test_usage_is_read_from_litellms_last_chunk_with_an_empty_choice():
    handler, _ = relay(False, chunk(CONTENT), chunk(EMPTY, WITH_USAGE))
    assert handler.usage == USAGE


def test_the_last_usage_of_vllms_running_totals_wins():
    first = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    handler, _ = relay(False, chunk(CONTENT, ',"usage":' + json.dumps(first)),
                       chunk(FINISH, WITH_USAGE))
    assert handler.usage == USAGE


def test_a_null_usage_does_not_forget_the_usage_seen():
    handler, _ = relay(False, chunk("[]", WITH_USAGE), chunk(CONTENT, ',"usage":null'))
    assert handler.usage == USAGE


def test_usage_is_read_when_llmedge_keeps_it_to_itself():
    handler, _ = relay(True, chunk(CONTENT), chunk(EMPTY, WITH_USAGE))
    assert handler.usage == USAGE


# -- the client that did not ask for the usage ---------------------------------


def test_openais_usage_chunk_is_not_sent():
    _, sent = relay(True, chunk("[]", WITH_USAGE))
    assert sent == []


def test_litellms_usage_chunk_is_not_sent():
    _, sent = relay(True, chunk(EMPTY, WITH_USAGE))
    assert sent == []


def test_a_chunk_with_only_null_fields_in_its_choice_is_not_sent():
    empty = '[{"index":0,"delta":{"content":null,"role":null},"logprobs":null,' \
            '"finish_reason":null}]'
    _, sent = relay(True, chunk(empty, WITH_USAGE))
    assert sent == []


def test_a_legacy_completion_usage_chunk_with_empty_text_is_not_sent():
    empty = '[{"text":"","index":0,"logprobs":null,"finish_reason":null}]'
    _, sent = relay(True, chunk(empty, WITH_USAGE))
    assert sent == []


def test_a_chunk_with_an_empty_choice_and_a_null_usage_is_sent_without_it():
    # The server would have sent it had llmedge not asked for the usage.
    _, sent = relay(True, chunk(EMPTY, ',"usage":null'))
    assert sent == [chunk(EMPTY)]


def test_null_usage_is_cut_from_every_chunk_keeping_the_other_bytes():
    original = chunk(CONTENT, ',"usage":null,"obfuscation":"Gx1"')
    _, sent = relay(True, original)
    assert sent == [original.replace(b',"usage":null', b"")]


def test_null_usage_first_in_its_object_is_cut_with_its_comma():
    _, sent = relay(True, b'{"usage":null,"choices":' + CONTENT.encode() + b"}")
    assert sent == [b'{"choices":' + CONTENT.encode() + b"}"]


def test_a_chunk_with_content_keeps_it_without_its_usage():
    _, sent = relay(True, chunk(CONTENT, WITH_USAGE))
    assert [json.loads(s) for s in sent] == [json.loads(chunk(CONTENT))]


def test_a_chunk_with_a_finish_reason_keeps_it_without_its_usage():
    _, sent = relay(True, chunk(FINISH, WITH_USAGE))
    assert [json.loads(s) for s in sent] == [json.loads(chunk(FINISH))]


def test_a_changed_chunk_is_sent_compact():
    spaced = json.dumps({"choices": json.loads(FINISH), "usage": USAGE}).encode()
    _, sent = relay(True, spaced)
    assert sent == [b'{"choices":' + FINISH.encode() + b"}"]


def test_a_chunk_without_usage_is_relayed_byte_for_byte():
    spaced = b'{"choices": [{"index": 0, "delta": {"content": "\\u00e9"}}]}'
    _, sent = relay(True, spaced)
    assert sent == [spaced]


# -- the client that asked for the usage ----------------------------------------


def test_every_chunk_goes_as_it_came_to_a_client_that_asked_for_usage():
    events = [chunk(CONTENT, ',"usage":null'), chunk(EMPTY, WITH_USAGE), chunk("[]", WITH_USAGE)]
    _, sent = relay(False, *events)
    assert sent == events


# -- keeping the usage out, whatever the bytes --------------------------------------

#: Keys that spell "usage" (or nearly) in the ways JSON allows.
KEYS = [b'"usage"', b'"\\u0075sage"', b'"x\\"usage"', b'"usage\\\\"', b'"a"', b'"b"']
VALUES = [b"null", b"1", b'"usage"', b'{"usage":null}', b'{"usage":null,"a":1}', b'{"usage":1}',
          b"[]", b'"\\"usage\\""']


@st.composite
def chunks_with_null_usage(draw) -> bytes:
    """
    A chunk with content and a top-level null usage, among members whose
    keys and values look like it, in compact or spaced JSON.
    """
    members = [b'"choices":' + CONTENT.encode()]
    for _ in range(draw(st.integers(min_value=0, max_value=4))):
        key = draw(st.sampled_from(KEYS))
        if json.loads(key) == "usage":
            continue  # one top-level usage, placed below
        members.append(key + b":" + draw(st.sampled_from(VALUES)))
    spelling = draw(st.sampled_from([b'"usage"', b'"\\u0075sage"']))
    members.insert(draw(st.integers(min_value=0, max_value=len(members))), spelling + b":null")
    comma = draw(st.sampled_from([b",", b", ", b" ,"]))
    return b"{" + comma.join(members) + b"}"


@settings(max_examples=300, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(chunks_with_null_usage())
def test_the_relayed_chunk_is_the_original_without_its_usage(data):
    expected = json.loads(data)
    del expected["usage"]
    _, sent = relay(True, data)
    assert [json.loads(s) for s in sent] == [expected]


# -- one event, one line ---------------------------------------------------------


def sdk_events(body: bytes) -> list[str]:
    """
    The data of each event, as the openai SDK's own decoder reads them.
    """
    return [e.data for e in SSEDecoder().iter_bytes(iter([body]))]


def relayed(strip_usage: bool, upstream: bytes) -> bytes:
    """
    What the client is sent for an upstream stream: read, relayed, framed.
    """
    handler = ChunkRelay(strip_usage)
    body: list[bytes] = []
    reader = SSEReader(lambda event, data: handler(event, data, lambda d: body.append(frame(d))))
    reader.dataReceived(upstream)
    return b"".join(body)


ORIGINAL = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{"index": 0, "delta": {"content": "two\nlines\r\n"},
                         "finish_reason": None}]}


def multi_line(document: dict, end: bytes) -> bytes:
    """
    An upstream event whose JSON is pretty-printed over many data lines.
    """
    lines = json.dumps(document, indent=2).encode().split(b"\n")
    return b"".join(b"data: " + line + end for line in lines) + end


def test_a_multi_line_event_reaches_the_sdk_as_the_same_json():
    body = relayed(False, multi_line(ORIGINAL, b"\n"))
    assert [json.loads(d) for d in sdk_events(body)] == [ORIGINAL]


def test_a_stream_with_bare_cr_line_ends_reaches_the_sdk_as_the_same_json():
    body = relayed(False, multi_line(ORIGINAL, b"\r") + b"data: [DONE]\r\r")
    assert [json.loads(d) for d in sdk_events(body)] == [ORIGINAL]


def test_a_multi_line_event_with_usage_stripped_reaches_the_sdk_without_it():
    body = relayed(True, multi_line({**ORIGINAL, "usage": None}, b"\r\n"))
    assert [json.loads(d) for d in sdk_events(body)] == [ORIGINAL]


def test_a_single_line_event_is_relayed_byte_for_byte():
    data = json.dumps(ORIGINAL).encode()
    assert relayed(False, b"data: " + data + b"\r\r") == frame(data)
