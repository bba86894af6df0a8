"""
Requests that used to get a 500 or tie up the daemon, through the real
daemon with the official OpenAI SDK (and raw http.client where the SDK
cannot send what is needed): each is a 4xx naming what is wrong, the log
shows no critical line and no traceback, and the next good request is
served.
"""

import http.client
import json

import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream, record_of
from llmedge.checks import MAX_DEPTH

KEY = "sk-bad-requests"
OTHER_KEY = "sk-bad-requests-other"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as running:
        yield running


@pytest.fixture(scope="module")
def daemon(upstream, tmp_path_factory):
    config = tmp_path_factory.mktemp("bad") / "llmedge.toml"
    config.write_text(f"""
[providers.up]
kind = "openai"
base_url = "{upstream.base_url}/v1"

[models."mock"]
targets = [ {{ provider = "mock", model = "mock" }} ]

[models."renamed"]
targets = [ {{ provider = "up", model = "fake" }} ]
""")
    # Token limits on: the token estimate reads every message before the
    # provider is called, and was one of the places that failed.
    env = {"API_KEYS": f"{KEY},{OTHER_KEY}", "RATE_LIMIT_BURST": "10000",
           "RATE_LIMIT_TPM": "100000000"}
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    with Daemon(args, env=env) as running:
        yield running


@pytest.fixture
def client(daemon):
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=KEY, max_retries=0)


@pytest.fixture(autouse=True)
def healthy(daemon, client):
    """
    After each test: no critical line and no traceback in the log since it
    began, and a good request is served.
    """
    start = len(daemon.log)
    yield
    reply = client.chat.completions.create(model="mock", messages=HI)
    assert reply.choices[0].message.content == "You said: hi"
    log = daemon.log[start:]
    critical = [line for line in log.splitlines() if record_of(line).get("level") == "critical"]
    assert not critical and "Traceback" not in log, log[-3000:]


def refused(call, param, code) -> dict:
    with pytest.raises(openai.BadRequestError) as caught:
        call()
    error = caught.value
    assert (error.status_code, error.param, error.code) == (400, param, code)
    return error.body


def nested(depth):
    """
    A JSON value nesting C{depth} deep.
    """
    value = []
    for _ in range(depth - 1):
        value = [value]
    return value


def send(daemon, method, path, body, headers):
    """
    One request by http.client, which can repeat a header; returns the
    status and the JSON answer.
    """
    connection = http.client.HTTPConnection(*daemon.host_port, timeout=10)
    try:
        connection.putrequest(method, path)
        for name, value in headers:
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Type", "application/json")
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def post(daemon, path, body, *headers):
    return send(daemon, "POST", path, body, headers)


# -- 1. whatever llmedge reads is type-checked first --------------------------------


@pytest.mark.parametrize("text", [5, ["hi"], True, None, {}], ids=repr)
@pytest.mark.parametrize("model", ["mock", "renamed"])
def test_text_part_that_is_not_a_string_is_a_400_naming_it(client, upstream, model, text):
    upstream.reset()
    content = [{"type": "text", "text": "hi"}, {"type": "text", "text": text}]
    body = refused(lambda: client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}]),
        "messages[0].content[1].text", "invalid_type")
    assert "expected a string" in body["message"]
    assert upstream.log() == []


def test_tool_call_arguments_that_are_not_a_string_are_a_400(client):
    messages = [*HI, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"x": 1}}}]}]
    refused(lambda: client.chat.completions.create(model="mock", messages=messages),
            "messages[1].tool_calls[0].function.arguments", "invalid_type")


def test_prompt_of_the_wrong_type_deep_inside_is_a_400(client):
    refused(lambda: client.completions.create(model="mock", prompt=[[1, 2], [3, "4"]]),
            "prompt[1][1]", "invalid_type")


# -- 2. nesting -------------------------------------------------------------------


def test_deepest_body_is_renamed_and_streamed_upstream(client, upstream):
    upstream.reset()
    extra = nested(MAX_DEPTH - 1)  # the body itself is one level more
    chunks = list(client.chat.completions.create(
        model="renamed", messages=HI, stream=True, extra_body={"extra": extra}))
    assert chunks and all(chunk.choices for chunk in chunks)
    (seen,) = upstream.log()
    assert seen["body"]["model"] == "fake"
    assert seen["body"]["stream_options"] == {"include_usage": True}
    assert seen["body"]["extra"] == extra


def test_one_level_deeper_is_a_400_invalid_value(client, upstream):
    upstream.reset()
    body = refused(lambda: client.chat.completions.create(
        model="renamed", messages=HI, extra_body={"extra": nested(MAX_DEPTH)}),
        None, "invalid_value")
    assert "nested too deeply" in body["message"]
    assert upstream.log() == []


def test_body_that_python_just_parses_is_a_400_not_a_500(daemon, upstream):
    # 950 levels parse, but could not be encoded again for the upstream;
    # too deep for the SDK to send, so sent as bytes.
    upstream.reset()
    raw = b'{"model": "renamed", "stream": true, "messages": [{"role": "user", ' \
        b'"content": "hi"}], "extra": ' + b"[" * 950 + b"]" * 950 + b"}"
    status, body = post(daemon, "/v1/chat/completions", raw,
                        ("Authorization", f"Bearer {KEY}"))
    assert (status, body["error"]["code"]) == (400, "invalid_value")
    assert upstream.log() == []


# -- 3. bounded work ------------------------------------------------------------------


@pytest.mark.parametrize("dimensions", [16385, 10_000_000, 1_624_643_440], ids=repr)
def test_dimensions_past_16384_are_a_400(client, dimensions):
    refused(lambda: client.embeddings.create(model="mock", input="x", dimensions=dimensions),
            "dimensions", "invalid_value")


def test_more_embedding_values_than_the_mock_makes_are_a_400(client):
    body = refused(lambda: client.embeddings.create(
        model="mock", input=["x"] * 2048, dimensions=16384, encoding_format="float"),
        "input", "mock_limit_exceeded")
    assert "2048 inputs of 16384 dimensions" in body["message"]


def test_too_many_inputs_are_a_400(client):
    refused(lambda: client.embeddings.create(model="mock", input=["x"] * 2049), "input",
            "invalid_value")


def test_too_many_choices_are_a_400(client):
    refused(lambda: client.chat.completions.create(model="mock", messages=HI, n=129), "n",
            "invalid_value")


def test_stream_longer_than_the_mock_makes_is_a_400(client):
    long = [{"role": "user", "content": "word " * 40_000}]
    refused(lambda: client.chat.completions.create(model="mock", messages=long, stream=True),
            "max_tokens", "mock_limit_exceeded")
    chunks = list(client.chat.completions.create(
        model="mock", messages=long, stream=True, max_tokens=10))
    assert chunks[-1].choices[0].finish_reason == "length"


# -- 4. one key per request -----------------------------------------------------------


def get_models(daemon, *headers):
    return send(daemon, "GET", "/v1/models", None, headers)


@pytest.mark.parametrize(
    "headers",
    [
        [("Authorization", f"Bearer {KEY}"), ("Authorization", f"Bearer {OTHER_KEY}")],
        [("Authorization", f"Bearer {OTHER_KEY}"), ("Authorization", f"Bearer {KEY}")],
        [("x-api-key", KEY), ("x-api-key", OTHER_KEY)],
    ],
    ids=["authorization", "authorization-other-order", "x-api-key"],
)
def test_two_headers_naming_different_keys_are_a_401(daemon, headers):
    status, body = get_models(daemon, *headers)
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert "different keys" in body["error"]["message"]
    assert KEY not in body["error"]["message"]


def test_the_same_key_twice_is_served(daemon):
    status, body = get_models(daemon, ("Authorization", f"Bearer {KEY}"),
                              ("Authorization", f"Bearer {KEY}"), ("x-api-key", KEY))
    assert status == 200 and body["data"]
