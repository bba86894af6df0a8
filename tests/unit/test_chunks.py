"""
A complete answer told as a stream: the chunks OpenAI would have sent, read
back with the openai SDK's own accumulator, and their delivery under
back-pressure.
"""

from __future__ import annotations

import json

import pytest
from openai._models import construct_type
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types import Completion
from openai.types.chat import ChatCompletionChunk
from twisted.internet.defer import CancelledError
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from llmedge.providers.base import IEventStream
from llmedge.providers.chunks import ReplayStream, completion_chunks

USAGE = {"prompt_tokens": 9, "completion_tokens": 12, "total_tokens": 21}


def answer(*messages: dict, **fields) -> dict:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
        "model": "gpt-x", "system_fingerprint": "fp_1",
        "choices": [{"index": n, "message": m, "logprobs": None,
                     "finish_reason": "tool_calls" if m.get("tool_calls") else "stop"}
                    for n, m in enumerate(messages)],
        "usage": USAGE, **fields}


TEXT = {"role": "assistant", "content": "Hello, wörld.\nTwo lines.", "refusal": None}
TOOLS = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_a", "type": "function",
     "function": {"name": "weather", "arguments": '{"city": "Paris"}'}},
    {"id": "call_b", "type": "function", "function": {"name": "time", "arguments": "{}"}}]}
REFUSAL = {"role": "assistant", "content": None, "refusal": "I can't help with that."}


def accumulated(chunks: list[bytes]):
    """
    The completion the openai SDK makes of the chunks.
    """
    state = ChatCompletionStreamState()
    for data in chunks:
        list(state.handle_chunk(ChatCompletionChunk.model_validate(json.loads(data))))
    return state.get_final_completion()


def message_of(completion, n: int = 0) -> dict:
    """
    The SDK's message, in the fields an answer has (tool calls without the
    SDK's own index and parsed arguments).
    """
    message = completion.choices[n].message.model_dump(exclude_none=True, exclude={"parsed"})
    for call in message.get("tool_calls", []):
        call.pop("index", None)
        call["function"].pop("parsed_arguments", None)
    return message


def without_nulls(message: dict) -> dict:
    return {k: v for k, v in message.items() if v is not None}


# -- chat completions, read back by the SDK -------------------------------------


def test_a_text_answer_reads_back_as_the_same_message():
    assert message_of(accumulated(completion_chunks(answer(TEXT), False))) == without_nulls(TEXT)


def test_tool_calls_read_back_with_their_ids_names_and_arguments():
    assert message_of(accumulated(completion_chunks(answer(TOOLS), False))) == \
        without_nulls(TOOLS)


def test_a_refusal_reads_back_as_the_same_refusal():
    assert message_of(accumulated(completion_chunks(answer(REFUSAL), False))) == \
        without_nulls(REFUSAL)


def test_an_empty_content_reads_back_as_an_empty_string():
    empty = {"role": "assistant", "content": ""}
    assert message_of(accumulated(completion_chunks(answer(empty), False))) == empty


def test_other_message_fields_read_back_too():
    reasoning = {"role": "assistant", "content": "42", "reasoning_content": "Let me think."}
    assert message_of(accumulated(completion_chunks(answer(reasoning), False))) == reasoning


def test_every_choice_reads_back_with_its_finish_reason():
    completion = accumulated(completion_chunks(answer(TEXT, TOOLS), False))
    assert [c.finish_reason for c in completion.choices] == ["stop", "tool_calls"]
    assert message_of(completion, 1) == without_nulls(TOOLS)


def test_choices_are_streamed_in_the_order_of_their_indexes():
    document = answer(TEXT, REFUSAL)
    document["choices"].reverse()
    completion = accumulated(completion_chunks(document, False))
    assert message_of(completion, 0) == without_nulls(TEXT)


def test_log_probabilities_read_back():
    logprobs = {"content": [{"token": "Hi", "logprob": -0.5, "bytes": [72, 105],
                             "top_logprobs": []}], "refusal": None}
    document = answer({"role": "assistant", "content": "Hi"})
    document["choices"][0]["logprobs"] = logprobs
    completion = accumulated(completion_chunks(document, False))
    assert completion.choices[0].logprobs.model_dump() == logprobs


def test_the_answers_identity_is_on_every_chunk():
    chunks = [json.loads(c) for c in completion_chunks(answer(TEXT, TOOLS), True)]
    assert {(c["id"], c["created"], c["model"], c["system_fingerprint"], c["object"])
            for c in chunks} == {("chatcmpl-1", 1700000000, "gpt-x", "fp_1",
                                  "chat.completion.chunk")}


def test_the_role_comes_first_and_the_finish_reason_last():
    deltas = [json.loads(c)["choices"][0] for c in completion_chunks(answer(TOOLS), False)]
    assert deltas[0]["delta"] == {"role": "assistant"}
    assert [d["finish_reason"] for d in deltas] == [None] * (len(deltas) - 1) + ["tool_calls"]
    assert deltas[-1]["delta"] == {}


def test_each_tool_call_is_a_delta_with_its_index():
    chunks = completion_chunks(answer(TOOLS), False)
    deltas = [json.loads(c)["choices"][0]["delta"] for c in chunks]
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert [[c["index"] for c in call] for call in calls] == [[0], [1]]


def test_with_include_usage_the_last_chunk_has_the_usage_and_no_choices():
    chunks = [json.loads(c) for c in completion_chunks(answer(TEXT), True)]
    assert (chunks[-1]["choices"], chunks[-1]["usage"]) == ([], USAGE)
    assert [c["usage"] for c in chunks[:-1]] == [None] * (len(chunks) - 1)


def test_the_sdk_reads_the_usage_of_the_last_chunk():
    assert accumulated(completion_chunks(answer(TEXT), True)).usage.model_dump(
        exclude_none=True) == USAGE


def test_without_include_usage_no_chunk_has_a_usage():
    assert all("usage" not in json.loads(c) for c in completion_chunks(answer(TEXT), False))


def test_chunks_are_compact_utf8_json():
    chunks = completion_chunks(answer(TEXT), False)
    assert all(c == json.dumps(json.loads(c), separators=(",", ":"), ensure_ascii=False)
               .encode() for c in chunks)


def test_a_lone_surrogate_is_kept_escaped():
    broken = json.loads('{"role": "assistant", "content": "\\ud800"}')
    chunks = completion_chunks(answer(broken), False)
    assert any(b"\\ud800" in c for c in chunks)


@pytest.mark.parametrize("document", [
    [], {"choices": None}, {"choices": ["x"]},
    {"object": "chat.completion", "choices": [{"index": 0}]},
    {"object": "chat.completion", "choices": [{"index": 0, "message": {"tool_calls": "x"}}]},
    {"object": "chat.completion", "choices": [{"index": "0", "message": {}}]},
    {"object": "text_completion", "choices": [{"index": 0, "text": 3}]},
])
def test_a_document_that_is_not_a_completion_is_a_value_error(document):
    with pytest.raises(ValueError):
        completion_chunks(document, False)


# -- legacy completions --------------------------------------------------------------

LEGACY = {"id": "cmpl-1", "object": "text_completion", "created": 1700000000,
          "model": "gpt-3.5-turbo-instruct", "system_fingerprint": None,
          "choices": [{"index": 0, "text": "Once upon", "logprobs": None,
                       "finish_reason": "length"},
                      {"index": 1, "text": " a time", "logprobs": None,
                       "finish_reason": "stop"}],
          "usage": USAGE}


def legacy_chunks(include_usage: bool) -> list[Completion]:
    """
    The chunks as the SDK reads them: constructed, not validated (a chunk's
    null finish reason is outside the type of a whole answer's).
    """
    return [construct_type(type_=Completion, value=json.loads(c))
            for c in completion_chunks(LEGACY, include_usage)]


def test_a_legacy_answer_streams_as_text_completion_chunks():
    assert {c.object for c in legacy_chunks(False)} == {"text_completion"}


def test_a_legacy_answers_texts_and_finish_reasons_read_back():
    texts: dict[int, str] = {}
    finished: dict[int, str] = {}
    for chunk in legacy_chunks(False):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
            if choice.finish_reason:
                finished[choice.index] = choice.finish_reason
    assert (texts, finished) == ({0: "Once upon", 1: " a time"}, {0: "length", 1: "stop"})


def test_a_legacy_answers_usage_comes_last_with_include_usage():
    last = legacy_chunks(True)[-1]
    assert (last.choices, last.usage.model_dump(exclude_none=True)) == ([], USAGE)


# -- the replayed stream -------------------------------------------------------------

EVENTS = [b"1", b"2", b"3", b"4"]


class ReplayStreamTests(SynchronousTestCase):
    def test_it_is_an_event_stream_with_usage_and_headers(self):
        stream = ReplayStream(EVENTS, USAGE, ((b"x-a", b"1"),))
        verifyObject(IEventStream, stream)
        self.assertEqual((stream.usage, stream.headers), (USAGE, ((b"x-a", b"1"),)))

    def test_every_event_is_delivered_in_order_then_it_fires(self):
        received = []
        done = ReplayStream(EVENTS).start(received.append)
        self.assertEqual(received, EVENTS)
        self.assertIsNone(self.successResultOf(done))

    def test_pausing_stops_delivery_until_resumed(self):
        stream = ReplayStream(EVENTS)
        received = []

        def receive(event):
            received.append(event)
            if event == b"2":
                stream.pauseProducing()

        done = stream.start(receive)
        self.assertEqual(received, [b"1", b"2"])
        self.assertNoResult(done)
        stream.resumeProducing()
        self.assertEqual(received, EVENTS)
        self.successResultOf(done)

    def test_a_stream_paused_before_it_starts_delivers_on_resume(self):
        stream = ReplayStream(EVENTS)
        stream.pauseProducing()
        received = []
        done = stream.start(received.append)
        self.assertEqual(received, [])
        stream.resumeProducing()
        self.assertEqual(received, EVENTS)
        self.successResultOf(done)

    def test_resumed_from_within_a_delivery_it_delivers_each_event_once(self):
        stream = ReplayStream(EVENTS)
        received = []

        def receive(event):
            received.append(event)
            stream.pauseProducing()
            stream.resumeProducing()

        stream.start(receive)
        self.assertEqual(received, EVENTS)

    def test_stopping_fails_it_with_cancelled_and_delivers_no_more(self):
        stream = ReplayStream(EVENTS)
        received = []
        stream.pauseProducing()
        done = stream.start(received.append)
        stream.stopProducing()
        stream.resumeProducing()
        self.failureResultOf(done, CancelledError)
        self.assertEqual(received, [])

    def test_cancelling_its_deferred_delivers_no_more(self):
        stream = ReplayStream(EVENTS)
        received = []
        stream.pauseProducing()
        done = stream.start(received.append)
        done.cancel()
        stream.resumeProducing()
        self.failureResultOf(done, CancelledError)
        self.assertEqual(received, [])

    def test_a_receiver_that_raises_fails_it(self):
        def receive(event):
            raise RuntimeError("boom")

        self.failureResultOf(ReplayStream(EVENTS).start(receive), RuntimeError)
