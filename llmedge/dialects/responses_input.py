# -*- test-case-name: tests.unit.test_dialect_responses -*-
"""
A Responses request's C{input} as the turns of a conversation.

Responses has no turns: its input is a list of items (messages, function
calls, their outputs, reasoning), each on its own, where Chat Completions
and Messages group them into messages. So items are grouped here as a
Responses answer is made: what one answer holds (reasoning, text, function
calls) is one assistant turn, and the outputs of the calls it made are one
user turn, as Messages requires them (all the results of a turn's calls in
the next user message).

System and developer messages are the conversation's system prompts, in
order. What a translation cannot carry (a file, audio, an image by file
id, a reference to a stored item, a hosted tool's call) is noted in
C{conversation.unsupported}, not refused here: a provider of the client's
own dialect takes it as it is.
"""

from __future__ import annotations

from typing import Any

from llmedge.checks import (
    ANY_OBJECT,
    INVALID_VALUE,
    QUOTE_LIMIT,
    array_of,
    check_fields,
    join,
    missing,
    one_of,
    require,
    require_key,
    string,
    string_or,
    wrong_type,
)
from llmedge.dialects.conversation import (
    ASSISTANT,
    USER,
    Conversation,
    Image,
    Part,
    Reasoning,
    Text,
    ToolCall,
    ToolResult,
    Turn,
)
from llmedge.errors import invalid_request

__all__ = ["decode_input"]

_ROLES = ("user", "assistant", "system", "developer")
_CONTENT = string_or(list, array_of(ANY_OBJECT), "a string or an array of content parts")
_NOT_STORED = (
    "llmedge does not store responses; item_reference needs a provider serving "
    "the Responses API natively. Send the item itself in input instead."
)
_BY_FILE_ID = (
    "llmedge does not read OpenAI's files; an image by file_id needs a provider "
    "serving the Responses API natively. Send it as an image_url instead."
)


def _named(kind: str) -> str:
    return kind[:QUOTE_LIMIT]


class _Turns:
    """
    Turns being gathered: an item joins the turn before it when it
    continues it, else starts its own.
    """

    def __init__(self) -> None:
        self.turns: list[tuple[str, list[Part]]] = []

    def add(self, role: str, parts: list[Part], joins: bool) -> None:
        if joins and self.turns and self.turns[-1][0] == role:
            self.turns[-1][1].extend(parts)
        else:
            self.turns.append((role, parts))

    def after_results(self) -> bool:
        """
        Whether the last turn is a user turn ending with a tool's result.
        """
        if not self.turns:
            return False
        role, parts = self.turns[-1]
        return role == USER and bool(parts) and isinstance(parts[-1], ToolResult)

    def done(self) -> list[Turn]:
        return [Turn(role, tuple(parts)) for role, parts in self.turns if parts]


def _image(part: dict, path: str, conversation: Conversation) -> Image | None:
    """
    An C{input_image} part: an http(s) URL is left for the provider to
    fetch, a C{data:} URL is the image itself; a file id is a stored file.
    """
    check_fields(part, {"image_url": string, "file_id": string, "detail": string}, path)
    url = part.get("image_url")
    if url is None:
        if part.get("file_id") is None:
            raise missing(join(path, "image_url"))
        conversation.unsupported.append((join(path, "file_id"), _BY_FILE_ID))
        return None
    if url[:8].lower().startswith(("http://", "https://")):
        return Image(url=url)
    header, comma, data = url.partition(",")
    media_type, _, encoding = header[5:].partition(";")
    if not (header[:5].lower() == "data:" and comma and media_type and encoding == "base64"):
        raise invalid_request("Image URLs must be http(s) URLs or base64 data: URLs.",
                              join(path, "image_url"), INVALID_VALUE)
    return Image(media_type=media_type, data=data)


def _parts(content: list, path: str, conversation: Conversation) -> list[Text | Image]:
    """
    Content parts as the parts of a turn: text of either direction and
    images are kept, a refusal is dropped (it is not something to say
    again), files and audio are noted as unsupported.
    """
    parts: list[Text | Image] = []
    for j, part in enumerate(content):
        at = f"{path}[{j}]"
        kind = require(part, "type", string, at)
        if kind in ("input_text", "output_text"):
            require_key(part, "text", string, at)
            parts.append(Text(part["text"]))
        elif kind == "input_image":
            image = _image(part, at, conversation)
            if image is not None:
                parts.append(image)
        elif kind == "refusal":
            require_key(part, "refusal", string, at)
        else:
            message = (f"Content parts of type '{_named(kind)}' are not supported by "
                       "this model's provider.")
            conversation.unsupported.append((join(at, "type"), message))
    return parts


def _message(item: dict, path: str, conversation: Conversation, turns: _Turns) -> None:
    role = require(item, "role", one_of(*_ROLES), path)
    require_key(item, "content", _CONTENT, path)
    content = item["content"]
    content_path = join(path, "content")
    parts: list[Part] = [Text(content)] if type(content) is str else list(
        _parts(content, content_path, conversation))
    if role in ("system", "developer"):
        for j, part in enumerate(content if type(content) is list else ()):
            if part["type"] == "input_image":
                message = "System and developer messages may hold only text."
                conversation.unsupported.append((f"{content_path}[{j}].type", message))
        text = "".join(p.text for p in parts if isinstance(p, Text))
        if text:
            conversation.system.append(text)
    elif role == "assistant":
        turns.add(ASSISTANT, parts, joins=True)
    else:
        turns.add(USER, parts, joins=False)


def _function_call(item: dict, path: str, conversation: Conversation, turns: _Turns) -> None:
    call_id = require(item, "call_id", string, path)
    name = require(item, "name", string, path)
    arguments = require(item, "arguments", string, path)
    turns.add(ASSISTANT, [ToolCall(call_id, name, arguments)], joins=True)


def _function_call_output(
    item: dict, path: str, conversation: Conversation, turns: _Turns
) -> None:
    check_fields(item, {"call_id": string}, path)
    require_key(item, "output", _CONTENT, path)
    call_id = item.get("call_id")
    if call_id is None:
        # OpenAI's programmatic callers may leave it out; no other provider can.
        message = ("A function_call_output without a call_id is not supported by this "
                   "model's provider.")
        conversation.unsupported.append((join(path, "call_id"), message))
        return
    output = item["output"]
    if type(output) is str:
        content: list[Text | Image] = [Text(output)] if output else []
    else:
        content = _parts(output, join(path, "output"), conversation)
    turns.add(USER, [ToolResult(call_id, tuple(content))], joins=turns.after_results())


def _summary(value: Any, path: str) -> None:
    ANY_OBJECT(value, path)
    if require(value, "type", string, path) == "summary_text":
        require_key(value, "text", string, path)


def _reasoning(item: dict, path: str, conversation: Conversation, turns: _Turns) -> None:
    """
    A reasoning item as the reasoning of the assistant turn it opens: its
    summaries' text. Its C{encrypted_content} is OpenAI's alone, and no
    other provider can read it.
    """
    check_fields(item, {"summary": array_of(_summary)}, path)
    texts = [s["text"] for s in item.get("summary") or () if s["type"] == "summary_text"]
    text = "\n\n".join(t for t in texts if t)
    if text:
        turns.add(ASSISTANT, [Reasoning(text)], joins=True)


_ITEMS = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
    "reasoning": _reasoning,
}


def _kind(item: dict, path: str) -> str:
    """
    An item's type: a message may leave it out, and so may a reference to
    a stored item (which has an C{id} and no C{role}).
    """
    if item.get("type") is None:
        if item.get("role") is None and item.get("id") is not None:
            return "item_reference"
        return "message"
    return require(item, "type", string, path)


def decode_input(value: Any, conversation: Conversation) -> None:
    """
    Add the turns (and system prompts) of a Responses C{input} to
    C{conversation}: a string is one user turn, a list is items.

    @raise APIError: a 400 naming the first malformed field.
    """
    if type(value) is str:
        conversation.turns.append(Turn(USER, (Text(value),)))
        return
    if type(value) is not list:
        raise wrong_type("input", "a string or an array of input items", value)
    turns = _Turns()
    for i, item in enumerate(value):
        path = f"input[{i}]"
        ANY_OBJECT(item, path)
        kind = _kind(item, path)
        decode = _ITEMS.get(kind)
        if decode is not None:
            decode(item, path, conversation, turns)
        elif kind == "item_reference":
            conversation.unsupported.append((path, _NOT_STORED))
        else:
            message = (f"Input items of type '{_named(kind)}' are not supported by this "
                       "model's provider.")
            conversation.unsupported.append((join(path, "type"), message))
    conversation.turns.extend(turns.done())
