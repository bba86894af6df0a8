# -*- test-case-name: tests.unit.test_dialect_chat -*-
"""
OpenAI Chat Completions requests as conversations, and back: the request
half of the chat codec.

A chat body is decoded only when its provider speaks another dialect
(a passed-through body is never decoded), so decoding refuses what no
translation could ask (C{n} above 1, the deprecated C{function} role) and
notes in L{Conversation.unsupported} what only some could (audio and file
parts, hosted tools). It keeps the client's turns as given, one per
message: merging same-role turns is a rule of the dialects that need it.

Encoding is for the other way round, a client of another dialect reaching
an OpenAI-compatible server (vLLM, Ollama, LiteLLM, OpenAI itself), so it
writes the forms all of them take: C{max_tokens} rather than
C{max_completion_tokens}, string content where a turn is one text.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.checks import INVALID_VALUE, MAX_DEPTH, missing, nests_deeper_than
from llmedge.dialects.conversation import (
    ASSISTANT, AUTO, NONE, REQUIRED, USER, Conversation, Image, Part, ResponseFormat, Text,
    Tool, ToolCall, ToolChoice, ToolResult, Turn,
)
from llmedge.errors import invalid_request

__all__ = ["decode_request", "encode_request"]

_CHOICE_MODES = {"auto": AUTO, "required": REQUIRED, "none": NONE}


def _text_of(content: Any) -> str:
    """
    The text of a string or a list of text parts, parts joined without a
    separator (they are pieces of one text in OpenAI's model).
    """
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text") or "" for part in content or () if part.get("type") == "text"
    )


def _image(part: dict, path: str) -> Image:
    """
    An C{image_url} part (its C{image_url} an object with a C{url}, or the
    bare URL vLLM takes): an http(s) URL stays a URL, a base64 C{data:} URL
    becomes inline data. Other URLs (files, other encodings) could not be
    passed on by every dialect, so are refused.
    """
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    path += ".image_url.url"
    if not isinstance(url, str):
        raise invalid_request("An image_url part needs a url.", path)
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    header, comma, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if not (url.startswith("data:") and comma and encoding == "base64"):
        raise invalid_request("Image URLs must be http(s) URLs or base64 data: URLs.", path)
    return Image(media_type=media_type, data=data)


def _parts(content: Any, path: str, conversation: Conversation) -> list[Text | Image]:
    """
    Message content as text and image parts. Empty text says nothing (and
    Anthropic refuses empty text blocks), so is left out; a past refusal
    is no input for the model; audio, files and parts of types llmedge
    does not know are noted as unsupported.
    """
    if isinstance(content, str):
        return [Text(content)] if content else []
    parts: list[Text | Image] = []
    for j, part in enumerate(content or ()):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append(Text(part["text"]))
        elif kind == "image_url":
            parts.append(_image(part, f"{path}[{j}]"))
        elif kind != "refusal":
            conversation.unsupported.append((
                f"{path}[{j}].type",
                f"Content parts of type {str(kind)[:40]!r} are not supported "
                "by this model's provider.",
            ))
    return parts


def _tool_calls(message: dict, path: str, conversation: Conversation) -> list[ToolCall]:
    """
    An assistant's C{tool_calls}. The arguments stay the client's JSON
    text, but must be a JSON object no deeper than a body may be: dialects
    that carry them as an object (Messages) must be able to parse them and
    serialise them again.
    """
    calls = []
    for j, call in enumerate(message.get("tool_calls") or ()):
        where = f"{path}.tool_calls[{j}]"
        if (call.get("type") or "function") != "function":
            conversation.unsupported.append((
                f"{where}.type",
                "Only function tool calls are supported by this model's provider.",
            ))
            continue
        function = call.get("function") or {}
        if not call.get("id"):
            raise missing(f"{where}.id")
        if not function.get("name"):
            raise missing(f"{where}.function.name")
        text = function.get("arguments") or "{}"
        try:
            arguments = json.loads(text)
        except (TypeError, ValueError, RecursionError):
            arguments = None
        if not isinstance(arguments, dict) or nests_deeper_than(arguments, MAX_DEPTH):
            raise invalid_request(
                "Tool call arguments must be a JSON object nested at most "
                f"{MAX_DEPTH} levels deep.", f"{where}.function.arguments", INVALID_VALUE,
            )
        calls.append(ToolCall(call["id"], function["name"], text))
    return calls


def _turn(message: dict, path: str, conversation: Conversation) -> Turn:
    """
    One user, assistant or tool message as a turn; a tool message is a user
    turn holding one tool result.
    """
    role, content = message["role"], message.get("content")
    if role == "function":
        raise invalid_request(
            "Messages with the deprecated role 'function' are not supported "
            "by this model's provider; use 'tool' messages.",
            f"{path}.role",
        )
    parts: list[Part] = list(_parts(content, f"{path}.content", conversation))
    if role == "tool":
        return Turn(USER, (ToolResult(message["tool_call_id"], tuple(parts)),))
    if role == "assistant":
        parts += _tool_calls(message, path, conversation)
        return Turn(ASSISTANT, tuple(parts))
    return Turn(USER, tuple(parts))


def _tool(tool: dict, path: str, conversation: Conversation) -> Tool | None:
    if tool.get("type", "function") != "function":
        conversation.unsupported.append((
            f"{path}.type", "Only function tools are supported by this model's provider.",
        ))
        return None
    function = tool["function"]
    strict = function.get("strict")
    return Tool(function["name"], function.get("description"), function.get("parameters"),
                strict if isinstance(strict, bool) else None)


def _tool_choice(choice: Any, parallel: Any) -> ToolChoice | None:
    """
    C{tool_choice} and C{parallel_tool_calls} as one L{ToolChoice}, or
    L{None} when the client set neither.
    """
    if choice is None:
        mode, name = AUTO, None
    elif isinstance(choice, str) and choice in _CHOICE_MODES:
        mode, name = _CHOICE_MODES[choice], None
    elif isinstance(choice, dict) and choice.get("type") == "function":
        mode, name = REQUIRED, choice["function"]["name"]
    else:
        raise invalid_request(
            "tool_choice must be 'none', 'auto', 'required' or a function.",
            "tool_choice", INVALID_VALUE,
        )
    if choice is None and parallel is None:
        return None
    return ToolChoice(mode, name, parallel if isinstance(parallel, bool) else None)


def _response_format(value: Any) -> ResponseFormat | None:
    kind = (value or {}).get("type")
    if kind == "json_object":
        return ResponseFormat("json_object")
    if kind == "json_schema":
        schema = value.get("json_schema") or {}
        return ResponseFormat(
            "json_schema", schema.get("name"), schema.get("schema"), schema.get("strict")
        )
    return None


def decode_request(body: dict) -> Conversation:
    """
    The conversation a chat completions body (already checked by
    L{llmedge.validation.validate_chat}) asks for.

    @raise APIError: 400 for what no other dialect can be asked.
    """
    if (body.get("n") or 1) > 1:
        raise invalid_request(
            "This model's provider can only generate one choice; n must be 1.",
            "n", INVALID_VALUE,
        )
    conversation = Conversation(model=body["model"], turns=[])
    for i, message in enumerate(body["messages"]):
        if message["role"] in ("system", "developer"):
            conversation.system.append(_text_of(message.get("content")))
        else:
            conversation.turns.append(_turn(message, f"messages[{i}]", conversation))
    conversation.max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    stop = body.get("stop")
    conversation.stop = [s for s in ([stop] if isinstance(stop, str) else stop or []) if s]
    conversation.temperature = body.get("temperature")
    conversation.top_p = body.get("top_p")
    for k, tool in enumerate(body.get("tools") or ()):
        converted = _tool(tool, f"tools[{k}]", conversation)
        if converted is not None:
            conversation.tools.append(converted)
    choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
    if body.get("tools"):  # a choice among no tools is no choice (OpenAI refuses it)
        conversation.tool_choice = choice
    conversation.response_format = _response_format(body.get("response_format"))
    if body.get("user"):
        conversation.metadata["user_id"] = body["user"]
    conversation.stream = body.get("stream") is True
    options = body.get("stream_options") or {}
    conversation.include_usage = conversation.stream and options.get("include_usage") is True
    return conversation


def _content(parts: list[Text | Image]) -> str | list[dict]:
    """
    User content: a string when it is one text (what every server takes),
    else a list of text and image parts.
    """
    if len(parts) == 1 and isinstance(parts[0], Text):
        return parts[0].text
    return [
        {"type": "text", "text": p.text} if isinstance(p, Text)
        else {"type": "image_url", "image_url": {"url": p.as_url()}}
        for p in parts
    ]


def _user_messages(turn: Turn) -> list[dict]:
    """
    A user turn as chat messages: its tool results as C{tool} messages
    first (they must follow the assistant's calls directly), then its own
    content. A C{tool} message holds only text, so the images of a tool
    result go with the user content after it.
    """
    messages, rest = [], []
    for part in turn.parts:
        if isinstance(part, ToolResult):
            messages.append({"role": "tool", "tool_call_id": part.call_id, "content": part.text})
            rest += [p for p in part.content if isinstance(p, Image)]
        elif isinstance(part, Text | Image):
            rest.append(part)
    if rest or not messages:
        messages.append({"role": "user", "content": _content(rest) if rest else ""})
    return messages


def _assistant_message(turn: Turn) -> dict:
    """
    An assistant turn: its text as content, its tool calls as C{tool_calls}
    (content null when it has no text, as OpenAI sends it). Reasoning
    cannot be sent back in chat, and images are no assistant content.
    """
    texts = [p.text for p in turn.parts if isinstance(p, Text)]
    calls = [p for p in turn.parts if isinstance(p, ToolCall)]
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts)}
    if calls:
        if not texts:
            message["content"] = None
        message["tool_calls"] = [
            {"id": c.id, "type": "function",
             "function": {"name": c.name, "arguments": c.arguments}}
            for c in calls
        ]
    return message


def _choice(choice: ToolChoice) -> str | dict:
    if choice.name is not None:
        return {"type": "function", "function": {"name": choice.name}}
    return {AUTO: "auto", REQUIRED: "required", NONE: "none"}.get(choice.mode, "auto")


def _tools(conversation: Conversation, request: dict[str, Any]) -> None:
    """
    The tools, and how to choose among them: sent only with tools, since
    OpenAI refuses a C{tool_choice} without any.
    """
    if not conversation.tools:
        return
    tools = []
    for tool in conversation.tools:
        function: dict[str, Any] = {"name": tool.name}
        if tool.description is not None:
            function["description"] = tool.description
        if tool.parameters is not None:
            function["parameters"] = tool.parameters
        if tool.strict is not None:
            function["strict"] = tool.strict
        tools.append({"type": "function", "function": function})
    request["tools"] = tools
    choice = conversation.tool_choice
    if choice is not None:
        request["tool_choice"] = _choice(choice)
        if choice.parallel is not None:
            request["parallel_tool_calls"] = choice.parallel


def _format(response_format: ResponseFormat) -> dict:
    if response_format.kind != "json_schema":
        return {"type": "json_object"}
    # OpenAI requires a name; Messages' and other schemas may have none.
    schema: dict[str, Any] = {"name": response_format.name or "response"}
    if response_format.schema is not None:
        schema["schema"] = response_format.schema
    if response_format.strict is not None:
        schema["strict"] = response_format.strict
    return {"type": "json_schema", "json_schema": schema}


def encode_request(conversation: Conversation, model: str) -> dict:
    """
    The chat completions body that asks C{model}, on an OpenAI-compatible
    server, what C{conversation} asks. When streaming it always asks for
    the usage, which the proxy counts tokens from.
    """
    messages: list[dict] = [{"role": "system", "content": s} for s in conversation.system]
    for turn in conversation.turns:
        if turn.role == ASSISTANT:
            messages.append(_assistant_message(turn))
        else:
            messages += _user_messages(turn)
    request: dict[str, Any] = {"model": model, "messages": messages}
    if conversation.max_tokens is not None:
        request["max_tokens"] = conversation.max_tokens
    if conversation.temperature is not None:
        request["temperature"] = conversation.temperature
    if conversation.top_p is not None:
        request["top_p"] = conversation.top_p
    if conversation.stop:
        request["stop"] = list(conversation.stop)
    _tools(conversation, request)
    if conversation.response_format is not None:
        request["response_format"] = _format(conversation.response_format)
    if conversation.metadata.get("user_id"):
        request["user"] = conversation.metadata["user_id"]
    if conversation.stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request
