# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
Tests for L{llmedge.providers.mock}.
"""

import base64
import itertools
import json
import math
import struct

from twisted.internet.defer import CancelledError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from llmedge.providers.base import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    Call,
    IEventStream,
    IProvider,
)
from llmedge.errors import APIError
from llmedge.providers import mock_bounds as bounds
from llmedge.providers.mock import MockProvider
from llmedge.tokens import count_message_tokens, count_tokens
from llmedge.jsonwire import json_bytes

HELLO = [{"role": "user", "content": "Hello there, mock!"}]


def _provider(**kwargs):
    clock = Clock()
    clock.advance(1700000000.5)
    ids = (f"id{i}" for i in itertools.count())
    return clock, MockProvider(clock, id_factory=lambda: next(ids), **kwargs)


def _call(endpoint, **body):
    return Call(endpoint, {"model": "public", **body})


class _Case(SynchronousTestCase):
    def setUp(self):
        self.clock, self.provider = _provider()

    def chat(self, **body):
        body.setdefault("messages", HELLO)
        return self.successResultOf(
            self.provider.chat_completion(_call(CHAT, **body), "upstream")
        )

    def completion(self, **body):
        body.setdefault("prompt", "Say this")
        return self.successResultOf(
            self.provider.completion(_call(COMPLETIONS, **body), "upstream")
        )

    def embedding_answer(self, **body):
        body.setdefault("input", "some text")
        return self.successResultOf(
            self.provider.embedding(_call(EMBEDDINGS, **body), "upstream")
        )

    def embedding(self, **body):
        return json.loads(self.embedding_answer(**body).body)

    def drain(self, stream):
        """
        Run C{stream} to its end, returning its decoded events.
        """
        events = []
        done = stream.start(events.append)
        self.assertIsNone(self.successResultOf(self.run_out(done)))
        return [json.loads(e) for e in events]

    def run_out(self, d):
        """
        Advance the clock until nothing is pending, then return C{d}.
        """
        while self.clock.getDelayedCalls():
            self.clock.advance(1)
        return d


class ChatTests(_Case):
    def test_provides_interface(self):
        self.assertTrue(verifyObject(IProvider, self.provider))

    def test_replies_to_last_user_message(self):
        messages = [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "second"},
        ]
        content = self.chat(messages=messages)["choices"][0]["message"]["content"]
        self.assertEqual(content, "You said: second")

    def test_text_parts_are_joined(self):
        parts = [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
            {"type": "text", "text": "here"},
        ]
        result = self.chat(messages=[{"role": "user", "content": parts}])
        content = result["choices"][0]["message"]["content"]
        self.assertEqual(content, "You said: look here")

    def test_without_user_message_greets(self):
        result = self.chat(messages=[{"role": "system", "content": "Be nice."}])
        self.assertEqual(
            result["choices"][0]["message"]["content"],
            "Hello from the llmedge mock provider.",
        )

    def test_response_has_openai_shape(self):
        self.assertEqual(
            self.chat(),
            {
                "id": "chatcmpl-id0",
                "object": "chat.completion",
                "created": 1700000000,
                "model": "upstream",
                "system_fingerprint": "fp_llmedge_mock",
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "You said: Hello there, mock!",
                            "refusal": None,
                        },
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 12,
                    "completion_tokens": 8,
                    "total_tokens": 20,
                },
            },
        )

    def test_is_deterministic_apart_from_id(self):
        first, second = self.chat(), self.chat()
        self.assertNotEqual(first.pop("id"), second.pop("id"))
        self.assertEqual(first, second)

    def test_usage_agrees_with_tokens(self):
        result = self.chat(n=3)
        content = result["choices"][0]["message"]["content"]
        self.assertEqual(
            result["usage"],
            {
                "prompt_tokens": count_message_tokens(HELLO),
                "completion_tokens": 3 * count_tokens(content),
                "total_tokens": count_message_tokens(HELLO) + 3 * count_tokens(content),
            },
        )

    def test_max_tokens_truncates_with_finish_reason_length(self):
        choice = self.chat(max_tokens=3)["choices"][0]
        self.assertEqual(
            (choice["message"]["content"], choice["finish_reason"]),
            ("You said:", "length"),
        )

    def test_max_completion_tokens_wins_over_max_tokens(self):
        choice = self.chat(max_tokens=100, max_completion_tokens=2)["choices"][0]
        self.assertEqual(choice["message"]["content"], "You said")

    def test_max_tokens_not_reached_finishes_with_stop(self):
        choice = self.chat(max_tokens=8)["choices"][0]
        self.assertEqual(
            (choice["message"]["content"], choice["finish_reason"]),
            ("You said: Hello there, mock!", "stop"),
        )

    def test_stop_string_cuts_before_it(self):
        choice = self.chat(stop="there")["choices"][0]
        self.assertEqual(
            (choice["message"]["content"], choice["finish_reason"]),
            ("You said: Hello ", "stop"),
        )

    def test_stop_list_cuts_at_earliest_occurrence(self):
        choice = self.chat(stop=["mock", ","])["choices"][0]
        self.assertEqual(choice["message"]["content"], "You said: Hello there")

    def test_n_gives_n_identical_choices(self):
        choices = self.chat(n=3)["choices"]
        self.assertEqual([c["index"] for c in choices], [0, 1, 2])
        self.assertEqual(len({c["message"]["content"] for c in choices}), 1)

    def test_json_object_content_parses(self):
        result = self.chat(response_format={"type": "json_object"})
        content = json.loads(result["choices"][0]["message"]["content"])
        self.assertEqual(content, {"reply": "You said: Hello there, mock!"})

    def test_json_schema_content_parses(self):
        result = self.chat(response_format={"type": "json_schema", "json_schema": {}})
        content = json.loads(result["choices"][0]["message"]["content"])
        self.assertEqual(content, {"reply": "You said: Hello there, mock!"})


class LatencyTests(SynchronousTestCase):
    def test_latency_delays_answer_until_clock_advances(self):
        clock, provider = _provider(latency=2.0)
        d = provider.chat_completion(_call(CHAT, messages=HELLO), "upstream")
        clock.advance(1.9)
        self.assertNoResult(d)
        clock.advance(0.1)
        self.assertEqual(self.successResultOf(d)["object"], "chat.completion")

    def test_cancel_during_latency_leaves_no_delayed_calls(self):
        clock, provider = _provider(latency=2.0)
        d = provider.embedding(_call(EMBEDDINGS, input="x"), "upstream")
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(clock.getDelayedCalls(), [])


class ChatStreamTests(_Case):
    def stream(self, **body):
        return self.chat(stream=True, **body)

    def test_fires_with_event_stream(self):
        self.assertTrue(verifyObject(IEventStream, self.stream()))

    def test_event_order_is_role_content_finish(self):
        events = self.drain(self.stream(messages=[{"role": "user", "content": "Hi!"}]))
        deltas = [e["choices"][0]["delta"] for e in events]
        finishes = [e["choices"][0]["finish_reason"] for e in events]
        self.assertEqual(
            deltas,
            [
                {"role": "assistant", "content": "", "refusal": None},
                {"content": "You"},
                {"content": " said"},
                {"content": ":"},
                {"content": " Hi"},
                {"content": "!"},
                {},
            ],
        )
        self.assertEqual(finishes, [None] * 6 + ["stop"])

    def test_chunk_shape(self):
        first = self.drain(self.stream())[0]
        self.assertEqual(
            first,
            {
                "id": "chatcmpl-id0",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "upstream",
                "system_fingerprint": "fp_llmedge_mock",
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": "", "refusal": None},
                        "logprobs": None,
                        "finish_reason": None,
                    }
                ],
            },
        )

    def test_events_are_compact_utf8_json(self):
        events = []
        stream = self.stream(messages=[{"role": "user", "content": "café"}])
        stream.start(events.append)
        self.clock.advance(0)
        self.assertIsInstance(events[0], bytes)
        self.assertNotIn(b", ", events[0])

    def test_joined_deltas_equal_non_streamed_content(self):
        body = dict(max_tokens=4, n=2, stop="mock")
        plain = self.chat(**body)["choices"]
        events = self.drain(self.stream(**body))
        for choice in plain:
            joined = "".join(
                e["choices"][0]["delta"].get("content", "")
                for e in events
                if e["choices"][0]["index"] == choice["index"]
            )
            self.assertEqual(joined, choice["message"]["content"])

    def test_n_choices_stream_one_after_another(self):
        events = self.drain(self.stream(n=2))
        indexes = [e["choices"][0]["index"] for e in events]
        self.assertEqual(indexes, sorted(indexes))
        self.assertEqual(set(indexes), {0, 1})

    def test_include_usage_adds_final_usage_chunk(self):
        events = self.drain(self.stream(stream_options={"include_usage": True}))
        self.assertTrue(all(e["usage"] is None for e in events[:-1]))
        self.assertEqual(events[-1]["choices"], [])
        self.assertEqual(events[-1]["usage"], self.chat()["usage"])

    def test_without_include_usage_chunks_have_no_usage(self):
        events = self.drain(self.stream())
        self.assertFalse(any("usage" in e for e in events))

    def test_start_delivers_nothing_synchronously(self):
        events = []
        self.stream().start(events.append)
        self.assertEqual(events, [])

    def test_pausing_from_receiver_holds_back_next_event(self):
        stream, events = self.stream(), []

        def receiver(event):
            events.append(event)
            stream.pauseProducing()

        stream.start(receiver)
        self.clock.advance(10)
        self.assertEqual(len(events), 1)

    def test_interval_spaces_events(self):
        self.clock, self.provider = _provider(stream_interval=0.5)
        events = []
        self.stream().start(events.append)
        self.clock.advance(0.4)
        self.assertEqual(events, [])
        self.clock.advance(0.1)
        self.assertEqual(len(events), 1)
        self.clock.advance(0.5)
        self.assertEqual(len(events), 2)

    def test_pause_stops_delivery(self):
        self.clock, self.provider = _provider(stream_interval=1.0)
        stream, events = self.stream(), []
        stream.start(events.append)
        self.clock.advance(1)
        stream.pauseProducing()
        self.clock.advance(10)
        self.assertEqual(len(events), 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_resume_restarts_delivery(self):
        self.clock, self.provider = _provider(stream_interval=1.0)
        stream, events = self.stream(), []
        done = stream.start(events.append)
        stream.pauseProducing()
        self.clock.advance(5)
        stream.resumeProducing()
        self.clock.advance(1)
        self.assertEqual(len(events), 1)
        self.assertIsNone(self.successResultOf(self.run_out(done)))

    def test_stop_producing_fails_with_cancelled_and_cleans_up(self):
        self.clock, self.provider = _provider(stream_interval=1.0)
        stream, events = self.stream(), []
        done = stream.start(events.append)
        self.clock.advance(1)
        stream.stopProducing()
        stream.stopProducing()
        self.failureResultOf(done, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(events), 1)

    def test_cancelling_start_fails_with_cancelled_and_cleans_up(self):
        done = self.stream().start(lambda event: None)
        done.cancel()
        self.failureResultOf(done, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_stop_while_paused_fails_with_cancelled(self):
        stream = self.stream()
        done = stream.start(lambda event: None)
        stream.pauseProducing()
        stream.stopProducing()
        self.failureResultOf(done, CancelledError)

    def test_receiver_error_fails_stream(self):
        def receiver(event):
            raise ValueError("client broke")

        done = self.stream().start(receiver)
        self.clock.advance(0)
        self.failureResultOf(done, ValueError)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CompletionTests(_Case):
    def test_response_has_openai_shape(self):
        self.assertEqual(
            self.completion(),
            {
                "id": "cmpl-id0",
                "object": "text_completion",
                "created": 1700000000,
                "model": "upstream",
                "system_fingerprint": "fp_llmedge_mock",
                "choices": [
                    {
                        "text": " This is a mock completion of: Say this",
                        "index": 0,
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 2,
                    "completion_tokens": 9,
                    "total_tokens": 11,
                },
            },
        )

    def test_max_tokens_defaults_to_16(self):
        choice = self.completion(prompt="word " * 40)["choices"][0]
        self.assertEqual(
            (count_tokens(choice["text"]), choice["finish_reason"]), (16, "length")
        )

    def test_max_tokens_truncates(self):
        choice = self.completion(max_tokens=2)["choices"][0]
        self.assertEqual(
            (choice["text"], choice["finish_reason"]), (" This is", "length")
        )

    def test_stop_cuts_text(self):
        choice = self.completion(stop=["mock"])["choices"][0]
        self.assertEqual(choice["text"], " This is a ")

    def test_list_prompt_with_n_numbers_choices_consecutively(self):
        choices = self.completion(prompt=["one", "two"], n=2)["choices"]
        self.assertEqual(
            [(c["index"], c["text"].split(": ")[1]) for c in choices],
            [(0, "one"), (1, "one"), (2, "two"), (3, "two")],
        )

    def test_token_prompts_read_as_token_counts(self):
        result = self.completion(prompt=[[1, 2, 3], [4]])
        self.assertEqual(
            [c["text"] for c in result["choices"]],
            [
                " This is a mock completion of: <3 tokens>",
                " This is a mock completion of: <1 tokens>",
            ],
        )
        self.assertEqual(result["usage"]["prompt_tokens"], 4)

    def test_single_token_prompt_is_one_prompt(self):
        choices = self.completion(prompt=[5, 6])["choices"]
        self.assertEqual([c["text"][-10:] for c in choices], ["<2 tokens>"])

    def test_echo_prepends_prompt_outside_usage(self):
        plain = self.completion()
        echoed = self.completion(echo=True)
        self.assertEqual(
            echoed["choices"][0]["text"], "Say this" + plain["choices"][0]["text"]
        )
        self.assertEqual(echoed["usage"], plain["usage"])

    def test_stream_chunks_join_to_text_and_end_with_finish(self):
        body = dict(prompt=["a", "b"], max_tokens=3)
        plain = self.completion(**body)["choices"]
        events = self.drain(self.completion(stream=True, **body))
        self.assertTrue(all(e["object"] == "text_completion" for e in events))
        for choice in plain:
            mine = [
                e["choices"][0]
                for e in events
                if e["choices"][0]["index"] == choice["index"]
            ]
            self.assertEqual("".join(c["text"] for c in mine), choice["text"])
            self.assertEqual(
                (mine[-1]["text"], mine[-1]["finish_reason"]),
                ("", choice["finish_reason"]),
            )

    def test_stream_include_usage(self):
        events = self.drain(
            self.completion(stream=True, stream_options={"include_usage": True})
        )
        self.assertEqual(
            (events[-1]["choices"], events[-1]["usage"]),
            ([], self.completion()["usage"]),
        )


class EmbeddingTests(_Case):
    def vector(self, text="some text", **body):
        return self.embedding(input=text, **body)["data"][0]["embedding"]

    def test_response_has_openai_shape(self):
        result = self.embedding(input=["a", "b"])
        self.assertEqual(
            [(d["object"], d["index"], len(d["embedding"])) for d in result["data"]],
            [("embedding", 0, 1536), ("embedding", 1, 1536)],
        )
        self.assertEqual(
            {k: result[k] for k in ("object", "model", "usage")},
            {
                "object": "list",
                "model": "upstream",
                "usage": {"prompt_tokens": 2, "total_tokens": 2},
            },
        )

    def test_answer_is_exactly_its_document_serialised(self):
        for encoding in ("float", "base64"):
            body = self.embedding_answer(input=["a", "b", "ü"], dimensions=13,
                                         encoding_format=encoding).body
            self.assertEqual(json_bytes(json.loads(body)), body)

    def test_answer_usage_is_the_documents(self):
        answer = self.embedding_answer(input=["one two", "three"])
        self.assertEqual(answer.usage, json.loads(answer.body)["usage"])

    def test_vectors_have_unit_norm(self):
        for dimensions in (1, 2, 3, 7, 8, 9, 100, 1536, 3071, 3072, 16384):
            norm = math.sqrt(math.fsum(v * v for v in self.vector(dimensions=dimensions)))
            self.assertAlmostEqual(norm, 1.0, places=6, msg=dimensions)

    def test_components_are_one_value_with_either_sign(self):
        [c] = struct.unpack("<f", struct.pack("<f", 1 / math.sqrt(1536)))
        vector = self.vector()
        self.assertEqual(set(vector), {c, -c})

    def test_same_input_same_vector(self):
        self.assertEqual(self.embedding(), self.embedding())

    def test_vector_depends_on_the_text_alone(self):
        alone = self.vector("b")
        in_batch = self.embedding(input=["a", "b"])["data"][1]["embedding"]
        self.assertEqual(alone, in_batch)

    def test_different_texts_are_nearly_orthogonal(self):
        pairs = [("a", "b"), ("cat", "cats"), ("The fox.", "The fox"), ("1", "2"),
                 ("some text", "some text ")]
        cosines = [sum(x * y for x, y in zip(self.vector(p), self.vector(q)))
                   for p, q in pairs]
        # Random signs: a cosine of 0 give or take 1/sqrt(1536) = 0.026.
        self.assertTrue(all(abs(c) < 0.1 for c in cosines), cosines)

    def test_dimensions_field_overrides_configured(self):
        self.assertEqual(len(self.vector(dimensions=8)), 8)

    def test_configured_dimensions_are_default(self):
        self.clock, self.provider = _provider(embedding_dimensions=12)
        self.assertEqual(len(self.vector()), 12)

    def test_base64_decodes_to_the_float_vector(self):
        for dimensions in (1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 1535, 3071):
            floats = self.vector(dimensions=dimensions)
            encoded = self.vector(dimensions=dimensions, encoding_format="base64")
            raw = base64.b64decode(encoded)
            self.assertEqual(
                (len(floats), list(struct.unpack(f"<{dimensions}f", raw))),
                (dimensions, floats),
                dimensions,
            )

    def test_token_inputs_count_their_length(self):
        result = self.embedding(input=[[1, 2, 3], [4, 5]])
        self.assertEqual(
            (len(result["data"]), result["usage"]["prompt_tokens"]), (2, 5)
        )

    def test_single_token_list_is_one_input(self):
        self.assertEqual(len(self.embedding(input=[1, 2, 3])["data"]), 1)


class BoundTests(_Case):
    """
    What one request may make the mock do; past each bound, a 400 that
    names it and says how to stay within it.
    """

    def refused(self, d, param):
        error = self.failureResultOf(d, APIError).value
        self.assertEqual((error.status, error.code, error.param),
                         (400, "mock_limit_exceeded", param))
        return error.message

    def chat_call(self, **body):
        body.setdefault("messages", HELLO)
        return self.provider.chat_completion(_call(CHAT, **body), "upstream")

    def completion_call(self, **body):
        return self.provider.completion(_call(COMPLETIONS, **body), "upstream")

    def embedding_call(self, **body):
        return self.provider.embedding(_call(EMBEDDINGS, **body), "upstream")

    def embedding_count(self, **body):
        """
        How many vectors an answer holds, without parsing its tens of MB.
        """
        answer = self.successResultOf(self.embedding_call(**body))
        return answer.body.count(b'{"object":"embedding","index":')

    def test_float_embeddings_of_the_small_model_at_its_largest_are_made(self):
        self.assertEqual(
            self.embedding_count(input=["x"] * 2048, dimensions=1536, encoding_format="float"),
            2048)

    def test_float_embedding_values_past_the_bound_are_refused(self):
        message = self.refused(
            self.embedding_call(input=["x"] * 2048, dimensions=1537, encoding_format="float"),
            "input")
        self.assertIn(f"at most {bounds.MAX_EMBEDDING_VALUES} embedding values", message)
        self.assertIn("2048 inputs of 1537 dimensions", message)
        self.assertIn("encoding_format 'base64'", message)

    def test_base64_embeddings_of_the_largest_api_request_are_made(self):
        self.assertEqual(
            self.embedding_count(input=["x"] * 2048, dimensions=3072, encoding_format="base64"),
            2048)

    def test_base64_embedding_values_past_the_bound_are_refused(self):
        message = self.refused(
            self.embedding_call(input=["x"] * 2048, dimensions=3073, encoding_format="base64"),
            "input")
        self.assertIn(f"{bounds.MAX_BASE64_EMBEDDING_VALUES} as base64", message)
        self.assertNotIn("encoding_format", message)

    def test_configured_dimensions_count_too(self):
        self.embedding(input=["x"] * 193, encoding_format="float")
        self.clock, self.provider = _provider(embedding_dimensions=16384)
        self.refused(self.embedding_call(input=["x"] * 193, encoding_format="float"), "input")

    def test_long_prompt_is_refused_before_it_is_read(self):
        text = "x" * (bounds.MAX_PROMPT_CHARS + 1)
        message = self.refused(self.chat_call(messages=[{"role": "user", "content": text}]),
                               "messages")
        self.assertIn(f"at most {bounds.MAX_PROMPT_CHARS} characters of prompt", message)
        self.refused(self.completion_call(prompt=text), "prompt")
        self.refused(self.embedding_call(input=[text[:1000]] * 300), "input")
        self.refused(self.completion_call(prompt=[1] * (bounds.MAX_PROMPT_CHARS + 1)), "prompt")

    def test_prompt_at_the_bound_is_answered(self):
        text = "x" * (bounds.MAX_PROMPT_CHARS - len("user"))
        result = self.chat(messages=[{"role": "user", "content": text}])
        self.assertEqual(result["choices"][0]["message"]["content"], "You said: " + text)

    def test_many_messages_and_parts_are_refused(self):
        many = [{"role": "user", "content": "x"}] * (bounds.MAX_PROMPT_ITEMS + 1)
        message = self.refused(self.chat_call(messages=many), "messages")
        self.assertIn(f"at most {bounds.MAX_PROMPT_ITEMS} messages and content parts", message)
        parts = [{"type": "text", "text": "x"}] * bounds.MAX_PROMPT_ITEMS
        self.refused(self.chat_call(messages=[{"role": "user", "content": parts}]), "messages")

    def test_answer_text_past_the_bound_is_refused(self):
        text = "x " * 100_000
        n = bounds.MAX_ANSWER_CHARS // len(text) + 1
        message = self.refused(self.chat_call(messages=[{"role": "user", "content": text}],
                                              n=n), "max_tokens")
        self.assertIn(f"at most {bounds.MAX_ANSWER_CHARS} characters of text", message)
        self.assertIn("Lower max_tokens or n", message)

    def test_max_tokens_brings_a_long_answer_within_the_bound(self):
        text = "x " * 100_000
        n = bounds.MAX_ANSWER_CHARS // len(text) + 1
        result = self.chat(messages=[{"role": "user", "content": text}], n=n, max_tokens=5)
        self.assertEqual(len(result["choices"]), n)

    def test_echoed_prompts_count_in_the_answer(self):
        prompt = "x " * 100_000
        n = bounds.MAX_ANSWER_CHARS // len(prompt) + 1
        self.assertEqual(len(self.completion(prompt=prompt, n=n)["choices"]), n)
        message = self.refused(self.completion_call(prompt=prompt, n=n, echo=True),
                               "max_tokens")
        self.assertIn("leave echo off", message)

    def test_stream_of_too_many_chunks_is_refused(self):
        text = "x " * bounds.MAX_STREAM_CHUNKS
        message = self.refused(
            self.chat_call(messages=[{"role": "user", "content": text}], stream=True),
            "max_tokens")
        self.assertIn(f"at most {bounds.MAX_STREAM_CHUNKS} chunks", message)
        self.refused(self.chat_call(messages=[{"role": "user", "content": "x " * 1000}],
                                    stream=True, n=128,
                                    max_tokens=bounds.MAX_STREAM_CHUNKS // 128),
                     "max_tokens")

    def test_stream_within_the_bound_is_made(self):
        text = "x " * bounds.MAX_STREAM_CHUNKS
        stream = self.successResultOf(self.chat_call(
            messages=[{"role": "user", "content": text}], stream=True,
            max_tokens=bounds.MAX_STREAM_CHUNKS - 2))
        self.assertEqual(len(stream._events), bounds.MAX_STREAM_CHUNKS)

    def test_the_same_answer_unstreamed_is_within_the_bound(self):
        text = "x " * bounds.MAX_STREAM_CHUNKS
        result = self.chat(messages=[{"role": "user", "content": text}])
        self.assertEqual(result["choices"][0]["finish_reason"], "stop")

    def test_too_many_completion_choices_are_refused(self):
        message = self.refused(self.completion_call(prompt=["p"] * 1025, n=2), "prompt")
        self.assertIn(f"at most {bounds.MAX_CHOICES} choices", message)
        self.assertEqual(len(self.completion(prompt=[[1]] * 1024, n=2)["choices"]), 2048)
