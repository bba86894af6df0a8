# -*- test-case-name: tests.unit.test_dialect_responses -*-
"""
OpenAI's Responses API, front side: a C{POST /v1/responses} body as a
conversation, so that clients written for it (the openai SDK's
C{client.responses}, the OpenAI Agents SDK, Codex) reach any provider.

What llmedge cannot do when it translates is the state: OpenAI keeps
responses, conversations and prompt templates, and a request may name them
(C{previous_response_id}, C{conversation}, C{prompt}) or ask to keep its
answer (C{store: true}, C{background: true}). llmedge keeps nothing, so
these are noted as unsupported, with what to do instead; a provider
serving the Responses API natively takes them as they are. C{store} is
OpenAI's default, but only an explicit C{true} is noted: a client that did
not ask does not mean to read the answer back.

Settings only OpenAI's models have (C{reasoning}, C{include},
C{truncation}, C{service_tier}, C{prompt_cache_key}...) and unknown fields
are dropped. The answer half is in L{responses_reply}.
"""

from __future__ import annotations

from typing import Any

from llmedge.checks import (
    ANY_OBJECT,
    INVALID_TYPE,
    QUOTE_LIMIT,
    Check,
    array_of,
    bad_value,
    boolean,
    by_type,
    check_fields,
    integer,
    join,
    json_type,
    missing,
    non_empty_string,
    number,
    object_with,
    require,
    string,
    string_or,
)
from llmedge.dialects.conversation import (
    REQUIRED,
    Conversation,
    ResponseFormat,
    Tool,
    ToolChoice,
)
from llmedge.dialects.responses_input import decode_input
from llmedge.errors import invalid_request

__all__ = ["decode_request", "usage_of"]

_NATIVELY = "needs a provider serving the Responses API natively."
#: What a request may ask of OpenAI's storage, and what to do instead.
_STATE = (
    ("previous_response_id", "llmedge does not store responses; previous_response_id "
     f"{_NATIVELY} Send the whole conversation in input instead."),
    ("conversation", "llmedge does not store conversations; conversation "
     f"{_NATIVELY} Send the whole conversation in input instead."),
    ("prompt", "llmedge does not store prompt templates; prompt "
     f"{_NATIVELY} Send the prompt's text in instructions and input instead."),
)
_ASKS_TO_KEEP = (
    ("store", f"llmedge does not store responses; store: true {_NATIVELY} "
     "Set store to false."),
    ("background", f"llmedge does not run responses in the background; background: true "
     f"{_NATIVELY} Set background to false."),
)

#: OpenAI's bounds on metadata.
METADATA_KEYS, METADATA_KEY_LENGTH, METADATA_VALUE_LENGTH = 16, 64, 512


def _metadata(value: Any, path: str) -> None:
    ANY_OBJECT(value, path)
    if len(value) > METADATA_KEYS:
        raise bad_value(path, f"an object of at most {METADATA_KEYS} keys", value)
    for key, text in value.items():
        at = join(path, key[:QUOTE_LIMIT])
        if len(key) > METADATA_KEY_LENGTH:
            raise bad_value(at, f"a key of at most {METADATA_KEY_LENGTH} characters", key)
        string(text, at)
        if len(text) > METADATA_VALUE_LENGTH:
            raise bad_value(at, f"a string of at most {METADATA_VALUE_LENGTH} characters", text)


_FUNCTION = object_with(
    {"description": string, "parameters": ANY_OBJECT, "strict": boolean},
    required={"name": non_empty_string},
)
_TOOL = by_type({"function": _FUNCTION})
_TOOL_CHOICE = string_or(
    dict, by_type({"function": object_with(required={"name": non_empty_string})}),
    "a string or an object",
)
_JSON_SCHEMA = object_with(
    {"description": string, "strict": boolean},
    required={"name": non_empty_string, "schema": ANY_OBJECT},
)
#: Text formats: JSON mode and schemas are every provider's; a format of a
#: kind not known is checked no further (see L{_response_format}).
_FORMAT = by_type({"json_schema": _JSON_SCHEMA})
_FORMATS = ("text", "json_object", "json_schema")

_SETTINGS: dict[str, Check] = {
    "instructions": string,
    "max_output_tokens": integer(1),
    "temperature": number(0, 2),
    "top_p": number(0, 1),
    "stream": boolean,
    "parallel_tool_calls": boolean,
    "store": boolean,
    "background": boolean,
    "previous_response_id": string,
    "conversation": string_or(dict, ANY_OBJECT, "a string or an object"),
    "prompt": ANY_OBJECT,
    "user": string,
    "safety_identifier": string,
    "metadata": _metadata,
    "text": object_with({"format": _FORMAT, "verbosity": string}),
    "tools": array_of(_TOOL),
    "tool_choice": _TOOL_CHOICE,
}


def _unsupported_state(body: dict, conversation: Conversation) -> None:
    for key, message in _STATE:
        if body.get(key) is not None:
            conversation.unsupported.append((key, message))
    for key, message in _ASKS_TO_KEEP:
        if body.get(key) is True:
            conversation.unsupported.append((key, message))


def _tools(tools: list, conversation: Conversation) -> None:
    """
    Functions are tools of every provider; OpenAI's hosted tools (web
    search, file search, computer use, code interpreter, MCP...) run at
    OpenAI and are noted as unsupported.
    """
    for k, tool in enumerate(tools):
        kind = tool["type"]
        if kind == "function":
            conversation.tools.append(
                Tool(tool["name"], tool.get("description"), tool.get("parameters"),
                     tool.get("strict")))
        else:
            message = (f"Tools of type '{kind[:QUOTE_LIMIT]}' are not supported by this "
                       "model's provider.")
            conversation.unsupported.append((f"tools[{k}].type", message))


def _tool_choice(body: dict, conversation: Conversation) -> None:
    choice, parallel = body.get("tool_choice"), body.get("parallel_tool_calls")
    if type(choice) is dict:
        if choice["type"] != "function":
            message = (f"Tool choices of type '{choice['type'][:QUOTE_LIMIT]}' are not "
                       "supported by this model's provider.")
            conversation.unsupported.append(("tool_choice.type", message))
            return
        conversation.tool_choice = ToolChoice(REQUIRED, choice["name"], parallel)
    elif choice is not None:
        if choice not in ("auto", "none", "required"):
            raise bad_value("tool_choice", "one of 'auto', 'none', 'required'", choice)
        conversation.tool_choice = ToolChoice(choice, None, parallel)
    elif parallel is not None:
        conversation.tool_choice = ToolChoice(parallel=parallel)


def _response_format(body: dict, conversation: Conversation) -> ResponseFormat | None:
    """
    Structured output: JSON mode or a schema. A format of a newer kind is
    noted as unsupported: only OpenAI would know what it asks.
    """
    form = (body.get("text") or {}).get("format")
    if form is None or form["type"] == "text":
        return None
    if form["type"] not in _FORMATS:
        message = (f"Text formats of type '{form['type'][:QUOTE_LIMIT]}' are not supported "
                   "by this model's provider.")
        conversation.unsupported.append(("text.format.type", message))
        return None
    return ResponseFormat(form["type"], form.get("name"), form.get("schema"),
                          form.get("strict"))


def decode_request(body: Any) -> Conversation:
    """
    The conversation a C{/v1/responses} body asks for.

    C{instructions} is the first system prompt; C{user} or, newer,
    C{safety_identifier} is the metadata's C{user_id}.

    @raise APIError: a 400 naming the first malformed field.
    """
    if type(body) is not dict:
        message = f"The request body must be a JSON object, but got {json_type(body)}."
        raise invalid_request(message, None, INVALID_TYPE)
    model = require(body, "model", non_empty_string)
    check_fields(body, _SETTINGS)
    conversation = Conversation(model, [])
    _unsupported_state(body, conversation)
    if body.get("instructions"):
        conversation.system.append(body["instructions"])
    if body.get("input") is not None:
        decode_input(body["input"], conversation)
    elif not any(body.get(key) is not None for key, _ in _STATE):
        raise missing("input")
    _tools(body.get("tools") or [], conversation)
    _tool_choice(body, conversation)
    conversation.max_tokens = body.get("max_output_tokens")
    conversation.temperature = body.get("temperature")
    conversation.top_p = body.get("top_p")
    conversation.response_format = _response_format(body, conversation)
    conversation.metadata = dict(body.get("metadata") or {})
    for key in ("user", "safety_identifier"):
        if body.get(key) is not None:
            conversation.metadata["user_id"] = body[key]
    conversation.stream = body.get("stream") is True
    return conversation


#: The largest token count believed: what a signed 64-bit counter holds.
_MOST_TOKENS = 2**63 - 1


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= _MOST_TOKENS


def usage_of(document: Any) -> dict | None:
    """
    OpenAI's chat usage object for a Responses C{usage}, which the token
    limits and metrics read: from a response, or from the event
    (C{response.completed} and its kin) that carries one. L{None} when
    there is none, or its counts are not counts.
    """
    if type(document) is not dict:
        return None
    response = document.get("response")
    usage = (response if type(response) is dict else document).get("usage")
    if type(usage) is not dict:
        return None
    prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
    if not (_count(prompt) and _count(completion)):
        return None
    total = usage.get("total_tokens")
    result: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": total if _count(total) else prompt + completion,
    }
    details = usage.get("input_tokens_details")
    cached = details.get("cached_tokens") if type(details) is dict else None
    if _count(cached) and cached > 0:
        result["prompt_tokens_details"] = {"cached_tokens": cached}
    return result
