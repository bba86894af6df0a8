# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
Anthropic Messages request bodies as conversations: the front half of the
Messages request codec (L{llmedge.dialects.messages}).

Clients that speak Messages to llmedge (the anthropic SDKs, Claude Code)
send bodies nothing else checks, so decoding checks every field it reads
with L{llmedge.checks}, naming the one at fault (C{messages[1].content[0].type})
and never quoting a prompt. A JSON number where a string belongs is a
400, not a crash further on; so is a block in a message of the wrong
role (a C{tool_result} from the assistant, C{tool_use} or C{thinking} from
the user), which Anthropic refuses too. Sizes are bounded by the body
limit alone.

It is lenient about what only a translation cannot carry: document,
search result and server tool blocks, server tools, image files, and
block types Anthropic adds later are noted in L{Conversation.unsupported}
and left out, never refused, since an Anthropic provider is sent the
client's own body untouched and takes them. C{thinking} (the budget),
C{output_config}, C{cache_control} and fields llmedge does not know are
dropped.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.checks import (
    ANY_OBJECT, array_of, bad_value, boolean, check_fields, integer, join,
    missing, non_empty_string, number, object_with, one_of, require, require_key, show,
    string, wrong_type,
)
from llmedge.dialects.conversation import (
    ASSISTANT, AUTO, NONE, REQUIRED, USER, Conversation, Image, Part, Reasoning, Text,
    Tool, ToolCall, ToolChoice, ToolResult, Turn,
)
from llmedge.errors import invalid_request

__all__ = ["decode_request"]

_CHOICES = {"auto": AUTO, "any": REQUIRED, "tool": REQUIRED, "none": NONE}


def _unsupported(conversation: Conversation, path: str, what: str, kind: str) -> None:
    conversation.unsupported.append(
        (path, f"{what} of type {show(kind)} are not supported by this model's provider.")
    )


def _text(block: dict, path: str, conversation: Conversation) -> Text | None:
    require_key(block, "text", string, path)
    return Text(block["text"]) if block["text"] else None


def _image(block: dict, path: str, conversation: Conversation) -> Image | None:
    source = require(block, "source", ANY_OBJECT, path)
    path = join(path, "source")
    kind = require(source, "type", string, path)
    if kind == "base64":
        media_type = require(source, "media_type", string, path)
        return Image(media_type=media_type, data=require(source, "data", string, path))
    if kind == "url":
        return Image(url=require(source, "url", string, path))
    _unsupported(conversation, join(path, "type"), "Image sources", kind)
    return None


def _tool_use(block: dict, path: str, conversation: Conversation) -> ToolCall:
    """
    A C{tool_use} block; its C{input} object becomes the arguments' JSON
    text, compact, as a model writes it.
    """
    call_id = require(block, "id", non_empty_string, path)
    name = require(block, "name", non_empty_string, path)
    arguments = require(block, "input", ANY_OBJECT, path)
    text = json.dumps(arguments, separators=(",", ":"), ensure_ascii=False)
    return ToolCall(call_id, name, text)


def _tool_result(block: dict, path: str, conversation: Conversation) -> ToolResult:
    call_id = require(block, "tool_use_id", non_empty_string, path)
    check_fields(block, {"is_error": boolean}, path)
    content = block.get("content")
    parts: list[Text | Image] = []
    if type(content) is str:
        parts = [Text(content)] if content else []
    elif content is not None:
        where = join(path, "content")
        if type(content) is not list:
            raise wrong_type(where, "a string or an array", content)
        for j, item in enumerate(content):
            part = _block(item, f"{where}[{j}]", _RESULT_BLOCKS, conversation)
            if part is not None:
                parts.append(part)
    return ToolResult(call_id, tuple(parts), block.get("is_error") is True)


def _thinking(block: dict, path: str, conversation: Conversation) -> Reasoning:
    require_key(block, "thinking", string, path)
    return Reasoning(block["thinking"], require(block, "signature", string, path))


def _redacted(block: dict, path: str, conversation: Conversation) -> None:
    """
    Redacted thinking is encrypted for Anthropic alone: no other provider
    could read it, so it is left out.
    """
    require(block, "data", string, path)


# Each block type llmedge carries: its decoder, and the role of the
# messages it may be in (Anthropic refuses the others), if only one.
_BLOCKS = {
    "text": (_text, None), "image": (_image, None), "tool_result": (_tool_result, USER),
    "tool_use": (_tool_use, ASSISTANT), "thinking": (_thinking, ASSISTANT),
    "redacted_thinking": (_redacted, ASSISTANT),
}
_RESULT_BLOCKS = {"text": (_text, None), "image": (_image, None)}
_SYSTEM_BLOCKS = {"text": (_text, None)}


def _block(block: Any, path: str, table: dict, conversation: Conversation,
           role: str | None = None) -> Part | None:
    """
    One content block, decoded by C{table}; a type not in it (documents,
    search results, server tool blocks, Anthropic's next kind) is noted as
    unsupported, never refused.
    """
    if type(block) is not dict:
        raise wrong_type(path, "an object", block)
    kind = require(block, "type", string, path)
    if kind not in table:
        _unsupported(conversation, join(path, "type"), "Content blocks", kind)
        return None
    decode, belongs = table[kind]
    if role is not None and belongs not in (None, role):
        raise bad_value(join(path, "type"), f"a block type {role} messages hold", kind)
    return decode(block, path, conversation)


def _content(content: Any, path: str, table: dict, conversation: Conversation,
             role: str | None = None) -> list:
    if type(content) is str:
        return [Text(content)] if content else []
    if type(content) is not list:
        raise wrong_type(path, "a string or an array", content)
    parts = (_block(b, f"{path}[{j}]", table, conversation, role) for j, b in enumerate(content))
    return [part for part in parts if part is not None]


def _message(message: dict, path: str, conversation: Conversation) -> None:
    """
    One message as a turn; a C{system} message (which Anthropic now takes
    among the others) adds to the system prompt, as in every dialect.
    """
    role = require(message, "role", one_of(USER, ASSISTANT, "system"), path)
    where = join(path, "content")
    if message.get("content") is None:
        raise missing(where)
    if role == "system":
        system = _content(message["content"], where, _SYSTEM_BLOCKS, conversation)
        conversation.system += [part.text for part in system]
        return
    parts = _content(message["content"], where, _BLOCKS, conversation, role)
    conversation.turns.append(Turn(role, tuple(parts)))


def _tools(tools: Any, conversation: Conversation) -> None:
    """
    Custom tools; a tool of another C{type} is one of Anthropic's server
    tools (web search, bash, text editor...), which Anthropic runs itself.
    """
    if type(tools) is not list:
        raise wrong_type("tools", "an array", tools)
    for k, tool in enumerate(tools):
        path = f"tools[{k}]"
        ANY_OBJECT(tool, path)
        check_fields(tool, {"type": string, "description": string}, path)
        if tool.get("type") not in (None, "custom"):
            _unsupported(conversation, join(path, "type"), "Tools", tool["type"])
            continue
        name = require(tool, "name", non_empty_string, path)
        schema = require(tool, "input_schema", ANY_OBJECT, path)
        conversation.tools.append(Tool(name, tool.get("description"), schema))


def _tool_choice(choice: Any, path: str = "tool_choice") -> ToolChoice:
    ANY_OBJECT(choice, path)
    kind = require(choice, "type", one_of(*_CHOICES), path)
    name = require(choice, "name", non_empty_string, path) if kind == "tool" else None
    check_fields(choice, {"disable_parallel_tool_use": boolean}, path)
    disable = choice.get("disable_parallel_tool_use")
    return ToolChoice(_CHOICES[kind], name, None if disable is None else not disable)


_OPTIONAL = {
    "stop_sequences": array_of(string), "temperature": number(0, 1),
    "top_p": number(0, 1), "top_k": integer(0), "stream": boolean,
    "metadata": object_with({"user_id": string}),
}


def decode_request(body: dict) -> Conversation:
    """
    The conversation a Messages body asks for. C{thinking} and fields
    llmedge does not know are dropped.

    @raise APIError: 400 naming the field at fault.
    """
    if type(body) is not dict:
        raise invalid_request("The request body must be a JSON object.")
    model = require(body, "model", non_empty_string)
    # Anthropic takes 0, to fill its prompt cache without generating.
    conversation = Conversation(model, [], max_tokens=require(body, "max_tokens", integer(0)))
    if body.get("system") is not None:
        system = _content(body["system"], "system", _SYSTEM_BLOCKS, conversation)
        conversation.system += [part.text for part in system]
    messages = require(body, "messages", array_of(ANY_OBJECT, 1))
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]", conversation)
    check_fields(body, _OPTIONAL)
    if body.get("tools") is not None:
        _tools(body["tools"], conversation)
    if body.get("tool_choice") is not None:
        conversation.tool_choice = _tool_choice(body["tool_choice"])
    conversation.stop = list(body.get("stop_sequences") or ())
    conversation.temperature = body.get("temperature")
    conversation.top_p, conversation.top_k = body.get("top_p"), body.get("top_k")
    user_id = (body.get("metadata") or {}).get("user_id")
    if user_id:
        conversation.metadata["user_id"] = user_id
    conversation.stream = body.get("stream") is True
    return conversation
