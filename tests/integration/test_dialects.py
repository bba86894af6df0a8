"""
The Responses API and Anthropic's Messages API in front, through the real
daemon, with the official SDKs unchanged: each against the mock, an
OpenAI-kind fake upstream serving only chat completions, an OpenAI-kind
fake serving C{/responses} itself, and an Anthropic-kind fake upstream.
"""

import json

import anthropic
import openai
import pytest

from llmedge.testing import Daemon, FakeUpstream

CLIENT_KEY = "sk-client-dialects-test"
UPSTREAM_KEY = "sk-upstream-dialects-key"
LIMITED_KEY = "sk-limited-dialects-key"
FRUGAL_KEY = "sk-frugal-dialects-key"
FAKE_TEXT = "chunk0 chunk1 chunk2 chunk3 chunk4"
TOOL = {"type": "function", "name": "lookup", "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"x": {"type": "integer"}}}}
ANTHROPIC_TOOL = {"name": "lookup", "description": "Look something up.",
                  "input_schema": TOOL["parameters"]}

#: public name -> (provider, upstream model)
MODELS = {
    "mock-model": ("mock", "mock"),
    "chat-only": ("up", "fake"),
    "native": ("native", "fake"),
    "claude": ("claude", "fake"),
    "claude-429": ("claude", "fake+status=429+retry-after=7"),
    "chat-500": ("up", "fake+status=500"),
    "chat-broken": ("up", "fake+chunks=10+reset-after=3"),
}
#: the backends every dialect test runs against, and the text each answers
BACKENDS = {"mock-model": None, "chat-only": FAKE_TEXT, "claude": FAKE_TEXT}


def config_text(base_url):
    providers = f"""
[providers.up]
kind = "openai"
base_url = "{base_url}/v1"
api_key_env = "UP_KEY"

[providers.native]
kind = "openai"
base_url = "{base_url}/v1"
api_key_env = "UP_KEY"
responses = true

[providers.claude]
kind = "anthropic"
base_url = "{base_url}"
api_key_env = "UP_KEY"
"""
    keys = f"""
[[auth.keys]]
name = "limited"
key = "{LIMITED_KEY}"
rpm = 1
burst = 1

[[auth.keys]]
name = "frugal"
key = "{FRUGAL_KEY}"
tokens_per_minute = 500
"""
    models = "".join(
        f'\n[models."{name}"]\ntargets = [{{ provider = "{p}", model = "{m}" }}]\n'
        for name, (p, m) in MODELS.items())
    return providers + keys + models


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as running:
        yield running


@pytest.fixture(scope="module")
def daemon(upstream, tmp_path_factory):
    config = tmp_path_factory.mktemp("dialects") / "llmedge.toml"
    config.write_text(config_text(upstream.base_url))
    env = {"API_KEYS": CLIENT_KEY, "UP_KEY": UPSTREAM_KEY, "UPSTREAM_COOLDOWN_SECONDS": "0",
           "SERVER_TIMEOUT_SECONDS": "20", "RATE_LIMIT_BURST": "10000"}
    args = ["--listen", "tcp:0:interface=127.0.0.1", "--config", str(config)]
    with Daemon(args, env=env) as running:
        yield running


@pytest.fixture
def oai(daemon, upstream):
    upstream.reset()
    return openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def claude(daemon, upstream):
    upstream.reset()
    return anthropic.Anthropic(base_url=daemon.base_url, api_key=CLIENT_KEY, max_retries=0)


def expected(model, said):
    return BACKENDS[model] or f"You said: {said}"


# -- Responses -------------------------------------------------------------


@pytest.mark.parametrize("model", BACKENDS)
def test_responses_create(oai, model):
    response = oai.responses.create(model=model, input="hello there",
                                    instructions="Be brief.")
    assert response.status == "completed"
    assert response.output_text == expected(model, "hello there")
    assert response.model == model
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == (
        response.usage.input_tokens + response.usage.output_tokens)


@pytest.mark.parametrize("model", BACKENDS)
def test_responses_create_streamed(oai, model):
    events = list(oai.responses.create(model=model, input="hello there", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == expected(model, "hello there")
    assert events[-1].response.output_text == text


@pytest.mark.parametrize("model", BACKENDS)
def test_responses_stream_helper(oai, model):
    with oai.responses.stream(model=model, input=[
            {"role": "user", "content": [{"type": "input_text", "text": "hi again"}]}]) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == final.output_text == expected(model, "hi again")


@pytest.mark.parametrize("model", ["chat-only", "claude"])
def test_responses_function_tool_call(oai, upstream, model):
    response = oai.responses.create(model=model, input="please use tool", tools=[TOOL])
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "lookup" and json.loads(call.arguments) == {"x": 1}
    follow = oai.responses.create(model=model, tools=[TOOL], input=[
        {"role": "user", "content": "please use tool"},
        {"type": "function_call", "call_id": call.call_id, "name": "lookup",
         "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "42"},
    ])
    assert follow.output_text
    sent = upstream.log()[-1]["body"]
    assert "42" in json.dumps(sent)


def test_responses_function_tool_call_streamed(oai):
    with oai.responses.stream(model="chat-only", input="use tool", tools=[TOOL]) as stream:
        final = stream.get_final_response()
    (call,) = [item for item in final.output if item.type == "function_call"]
    assert json.loads(call.arguments) == {"x": 1}


def test_responses_tool_forced_on_the_mock(oai):
    response = oai.responses.create(model="mock-model", input="go", tools=[TOOL],
                                    tool_choice="required")
    (call,) = response.output
    assert call.type == "function_call" and call.name == "lookup"


def test_responses_reach_a_chat_only_upstream_as_chat_completions(oai, upstream):
    oai.responses.create(model="chat-only", input="hello", instructions="Be brief.",
                         max_output_tokens=50)
    (seen,) = upstream.log()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"][0] == {"role": "system", "content": "Be brief."}
    assert seen["body"]["max_tokens"] == 50


def test_responses_pass_through_to_a_native_upstream(oai, upstream):
    response = oai.responses.create(model="native", input="hello")
    assert response.output_text.startswith("Responses API: ")
    (seen,) = upstream.log()
    assert seen["path"] == "/v1/responses" and seen["body"]["input"] == "hello"


def test_responses_stream_passed_through_from_a_native_upstream(oai):
    with oai.responses.stream(model="native", input="hello") as stream:
        final = stream.get_final_response()
    assert final.output_text.startswith("Responses API: ")


def test_responses_previous_response_id_is_refused_by_name(oai):
    with pytest.raises(openai.BadRequestError) as caught:
        oai.responses.create(model="chat-only", input="hi", previous_response_id="resp_1")
    assert caught.value.body["param"] == "previous_response_id"


def test_responses_unknown_model_is_not_found(oai):
    with pytest.raises(openai.NotFoundError):
        oai.responses.create(model="nope", input="hi")


def test_responses_stream_broken_upstream_ends_failed(oai):
    events = list(oai.responses.create(model="chat-broken", input="hi", stream=True))
    assert events[-1].type == "response.failed"
    assert events[-1].response.error.message


# -- Messages --------------------------------------------------------------


@pytest.mark.parametrize("model", BACKENDS)
def test_messages_create(claude, model):
    message = claude.messages.create(
        model=model, max_tokens=100, system="Be brief.",
        messages=[{"role": "user", "content": "hello there"}])
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].text == expected(model, "hello there")
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


@pytest.mark.parametrize("model", BACKENDS)
def test_messages_stream_final_message(claude, model):
    with claude.messages.stream(model=model, max_tokens=100,
                                messages=[{"role": "user", "content": "hi again"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == final.content[0].text == expected(model, "hi again")
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("model", ["chat-only", "claude"])
def test_messages_tool_use(claude, upstream, model):
    message = claude.messages.create(
        model=model, max_tokens=100, tools=[ANTHROPIC_TOOL],
        messages=[{"role": "user", "content": "please use tool"}])
    assert message.stop_reason == "tool_use"
    (use,) = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "lookup" and use.input == {"x": 1}
    follow = claude.messages.create(model=model, max_tokens=100, tools=[ANTHROPIC_TOOL], messages=[
        {"role": "user", "content": "please use tool"},
        {"role": "assistant", "content": [block.model_dump() for block in message.content]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": use.id, "content": "42"}]},
    ])
    assert follow.content[0].text
    assert "42" in json.dumps(upstream.log()[-1]["body"])


@pytest.mark.parametrize("model", ["chat-only", "claude"])
def test_messages_tool_use_streamed(claude, model):
    with claude.messages.stream(model=model, max_tokens=100, tools=[ANTHROPIC_TOOL],
                                messages=[{"role": "user", "content": "use tool"}]) as stream:
        final = stream.get_final_message()
    (use,) = [block for block in final.content if block.type == "tool_use"]
    assert use.input == {"x": 1} and final.stop_reason == "tool_use"


def test_messages_pass_through_to_anthropic_keeps_version_headers(claude, upstream):
    claude.messages.create(
        model="claude", max_tokens=10, messages=[{"role": "user", "content": "hi"}],
        extra_headers={"anthropic-beta": "tools-2099-01-01", "anthropic-version": "2023-06-01"})
    (seen,) = upstream.log()
    assert seen["path"] == "/v1/messages"
    assert seen["anthropic_version"] == "2023-06-01"
    assert seen["anthropic_beta"] == "tools-2099-01-01"
    assert seen["x_api_key"] == UPSTREAM_KEY
    assert CLIENT_KEY not in json.dumps(seen)


def test_messages_reach_a_chat_only_upstream_as_chat_completions(claude, upstream):
    claude.messages.create(model="chat-only", max_tokens=10, system="Be brief.",
                           messages=[{"role": "user", "content": "hi"}])
    (seen,) = upstream.log()
    assert seen["path"] == "/v1/chat/completions"
    assert seen["body"]["messages"] == [{"role": "system", "content": "Be brief."},
                                        {"role": "user", "content": "hi"}]


def test_messages_count_tokens_from_anthropic(claude, upstream):
    counted = claude.messages.count_tokens(
        model="claude", messages=[{"role": "user", "content": "hello there"}])
    assert counted.input_tokens > 0
    assert upstream.log()[0]["path"] == "/v1/messages/count_tokens"


@pytest.mark.parametrize("model", ["mock-model", "chat-only"])
def test_messages_count_tokens_estimated(claude, upstream, model):
    short = claude.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "hi"}])
    longer = claude.messages.count_tokens(
        model=model, messages=[{"role": "user", "content": "hi " * 200}])
    assert 0 < short.input_tokens < longer.input_tokens
    assert upstream.log() == []


def test_messages_bad_key_is_an_authentication_error(daemon):
    client = anthropic.Anthropic(base_url=daemon.base_url, api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as caught:
        client.messages.create(model="claude", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "authentication_error"


def test_messages_old_style_x_api_key_is_accepted(daemon):
    client = anthropic.Anthropic(base_url=daemon.base_url, api_key=None,
                                 default_headers={"x-api-key": CLIENT_KEY}, max_retries=0)
    message = client.messages.create(model="mock-model", max_tokens=10,
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].text == "You said: hi"


def test_messages_unknown_model_is_not_found(claude):
    with pytest.raises(anthropic.NotFoundError) as caught:
        claude.messages.create(model="nope", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "not_found_error"


def test_messages_key_rate_limit_is_a_rate_limit_error_with_headers(daemon):
    client = anthropic.Anthropic(base_url=daemon.base_url, api_key=LIMITED_KEY, max_retries=0)
    ask = {"model": "mock-model", "max_tokens": 10,
           "messages": [{"role": "user", "content": "hi"}]}
    first = client.messages.with_raw_response.create(**ask)
    assert first.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.create(**ask)
    assert caught.value.body["error"]["type"] == "rate_limit_error"
    assert int(caught.value.response.headers["retry-after"]) >= 1


def test_responses_held_to_the_key_token_budget(daemon):
    client = openai.OpenAI(base_url=daemon.base_url + "/v1", api_key=FRUGAL_KEY, max_retries=0)
    with pytest.raises(openai.RateLimitError):
        client.responses.create(model="mock-model", input="hi", max_output_tokens=5000)
    fine = client.responses.with_raw_response.create(model="mock-model", input="hi",
                                                      max_output_tokens=20)
    assert int(fine.headers["x-ratelimit-remaining-tokens"]) < 500


def test_messages_upstream_rate_limit_is_a_rate_limit_error(claude):
    with pytest.raises(anthropic.RateLimitError) as caught:
        claude.messages.create(model="claude-429", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert caught.value.response.headers["retry-after"] == "7"


def test_messages_bad_request_names_the_field(claude):
    with pytest.raises(anthropic.BadRequestError) as caught:
        claude.messages.create(model="mock-model", max_tokens=10, messages=[
            {"role": "robot", "content": "hi"}])
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "messages[0].role" in caught.value.body["error"]["message"]


def test_messages_upstream_failure_is_an_api_error(claude):
    with pytest.raises(anthropic.InternalServerError):
        claude.messages.create(model="chat-500", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])


def test_messages_stream_broken_upstream_ends_with_an_error_event(claude):
    with pytest.raises(anthropic.APIStatusError):
        with claude.messages.stream(model="chat-broken", max_tokens=100,
                                    messages=[{"role": "user", "content": "hi"}]) as stream:
            for _ in stream:
                pass


# -- Models ------------------------------------------------------------------


def test_models_listed_for_both_sdks(oai, claude):
    assert "claude" in {m.id for m in oai.models.list()}
    page = claude.models.list()
    assert "claude" in {m.id for m in page.data}
    assert claude.models.retrieve("claude").display_name == "claude"
