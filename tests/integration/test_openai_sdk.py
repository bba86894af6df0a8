"""
The official OpenAI Python SDK, unchanged, against the real daemon.
"""

import base64
import struct

import openai
import pytest

from tests.integration.conftest import API_KEY


@pytest.fixture(scope="module")
def client(daemon):
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=API_KEY, max_retries=0)


MESSAGES = [{"role": "user", "content": "hi"}]


def test_chat_completion(client):
    completion = client.chat.completions.create(model="mock", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "You said: hi"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


def test_chat_completion_honours_max_tokens_and_n(client):
    completion = client.chat.completions.create(
        model="mock", messages=[{"role": "user", "content": "a b c d e f"}],
        max_tokens=2, n=3,
    )
    assert [c.index for c in completion.choices] == [0, 1, 2]
    assert all(c.finish_reason == "length" for c in completion.choices)
    assert completion.usage.completion_tokens == 6


def test_streamed_chat_completion(client):
    chunks = list(client.chat.completions.create(model="mock", messages=MESSAGES, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: hi"
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streamed_chat_completion_with_usage(client):
    chunks = list(client.chat.completions.create(
        model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens > 0


def test_raw_response_carries_the_request_id(client):
    raw = client.chat.completions.with_raw_response.create(
        model="mock", messages=MESSAGES, extra_headers={"x-request-id": "sdk-test-1"})
    assert raw.headers["x-request-id"] == "sdk-test-1"
    assert raw.parse().choices


def test_legacy_completion(client):
    completion = client.completions.create(model="mock", prompt="Once upon", max_tokens=5)
    assert completion.object == "text_completion"
    assert completion.choices[0].text


def test_streamed_legacy_completion(client):
    chunks = list(client.completions.create(model="mock", prompt="Once", stream=True))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_embeddings_in_the_sdk_default_base64(client):
    response = client.embeddings.create(model="mock", input=["one", "two"], dimensions=16)
    assert [len(d.embedding) for d in response.data] == [16, 16]
    norm = sum(x * x for x in response.data[0].embedding)
    assert norm == pytest.approx(1.0, rel=1e-5)


def test_embeddings_as_floats_match_base64(client):
    floats = client.embeddings.create(
        model="mock", input="same", dimensions=8, encoding_format="float").data[0].embedding
    raw = client.embeddings.with_raw_response.create(
        model="mock", input="same", dimensions=8, encoding_format="base64")
    packed = raw.http_response.json()["data"][0]["embedding"]
    assert list(struct.unpack("<8f", base64.b64decode(packed))) == pytest.approx(floats)


def test_models_list_and_retrieve(client):
    assert [m.id for m in client.models.list()] == ["mock"]
    assert client.models.retrieve("mock").owned_by == "mock"


def test_unknown_model_is_not_found(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-nope", messages=MESSAGES)
    assert caught.value.code == "model_not_found"


def test_invalid_parameter_is_bad_request_naming_it(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="mock", messages=MESSAGES, temperature=5)
    assert caught.value.param == "temperature"


def test_async_client_streams(daemon):
    import asyncio

    async def main():
        client = openai.AsyncOpenAI(
            base_url=daemon.base_url + "/v1", api_key=API_KEY, max_retries=0)
        stream = await client.chat.completions.create(
            model="mock", messages=MESSAGES, stream=True)
        return [chunk async for chunk in stream]

    chunks = asyncio.run(main())
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "You said: hi"
