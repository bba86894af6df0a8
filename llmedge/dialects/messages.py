# -*- test-case-name: tests.unit.test_dialect_messages -*-
"""
The Anthropic Messages request codec: bodies decoded into conversations
(L{decode_request}, from L{llmedge.dialects.messages_decode}), and
conversations encoded as the Messages requests an Anthropic upstream is
sent on behalf of a client of another dialect.

Anthropic wants user and assistant turns to alternate, every
C{tool_result} answering one assistant turn in the single user turn that
follows it, and C{max_tokens}; it refuses empty text blocks. What it has
no field for is dropped, as clients set such fields by habit. That
includes the response format: Anthropic has no JSON mode every model
takes (its structured outputs, C{output_config.format}, are for recent
models only), so a C{json_object} or C{json_schema} request gets the
model's ordinary answer, which the prompt usually already asks to be
JSON, rather than a 400 from the models without it.

L{estimate_input_tokens} answers C{/v1/messages/count_tokens} when no
Anthropic provider serves the model, so none can count exactly.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.checks import INVALID_VALUE, MAX_DEPTH, nests_deeper_than
from llmedge.dialects.conversation import (
    NONE, REQUIRED, Conversation, Image, Part, Reasoning, Text, Tool, ToolCall,
    ToolChoice, ToolResult,
)
from llmedge.dialects.messages_decode import decode_request
from llmedge.errors import invalid_request
from llmedge.tokens import count_tokens

__all__ = ["decode_request", "encode_request", "estimate_input_tokens"]

DEFAULT_MAX_TOKENS = 4096

# Anthropic's temperature range is [0, 1], OpenAI's [0, 2]. Clamping keeps
# every OpenAI value valid, with "as random as allowed" for the top half,
# rather than rescaling, which would change the meaning of common values
# such as 0.7 that clients tuned against the model they now reach.
MAX_TEMPERATURE = 1.0

_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _image_block(image: Image) -> dict:
    if image.url is not None:
        return {"type": "image", "source": {"type": "url", "url": image.url}}
    source = {"type": "base64", "media_type": image.media_type, "data": image.data}
    return {"type": "image", "source": source}


def _input(call: ToolCall, path: str) -> dict:
    """
    Tool call arguments as the object Anthropic carries: text that is not
    a JSON object cannot be passed on, nor one nested deeper than a body
    may be (it could not be serialised again).
    """
    try:
        arguments = json.loads(call.arguments or "{}")
    except (TypeError, ValueError, RecursionError):
        arguments = None
    if not isinstance(arguments, dict) or nests_deeper_than(arguments, MAX_DEPTH):
        raise invalid_request(
            "Tool call arguments must be a JSON object nested at most "
            f"{MAX_DEPTH} levels deep.", path, INVALID_VALUE,
        )
    return arguments


def _encode_part(part: Part, path: str) -> dict | None:
    """
    One part as a block, or L{None} for what Anthropic refuses or could
    not check: empty text, and reasoning without the signature that proves
    Anthropic wrote it.
    """
    if isinstance(part, Text):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, Image):
        return _image_block(part)
    if isinstance(part, ToolCall):
        return {"type": "tool_use", "id": part.id, "name": part.name,
                "input": _input(part, path)}
    if isinstance(part, ToolResult):
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
        if any(isinstance(p, Image) for p in part.content):
            blocks = (_encode_part(p, path) for p in part.content)
            result["content"] = [block for block in blocks if block is not None]
        else:
            result["content"] = part.text
        if part.is_error:
            result["is_error"] = True
        return result
    if part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    return None


def _turns(conversation: Conversation) -> list[dict]:
    """
    The turns, consecutive ones of a role merged (Anthropic requires
    alternation, and every C{tool_result} answering one assistant turn
    must arrive in the single user turn that follows it), tool results
    first in theirs as Anthropic requires, and a lone text as a string.
    """
    turns: list[dict] = []
    for i, turn in enumerate(conversation.turns):
        blocks = [_encode_part(p, f"messages[{i}].content[{j}]") for j, p in enumerate(turn.parts)]
        blocks = [block for block in blocks if block is not None]
        if not blocks:
            continue
        if turns and turns[-1]["role"] == turn.role:
            turns[-1]["content"] += blocks
        else:
            turns.append({"role": turn.role, "content": blocks})
    for turn in turns:
        turn["content"].sort(key=lambda block: block["type"] != "tool_result")
        if len(turn["content"]) == 1 and turn["content"][0]["type"] == "text":
            turn["content"] = turn["content"][0]["text"]
    return turns


def _tool(tool: Tool) -> dict:
    converted: dict[str, Any] = {"name": tool.name}
    if tool.description:
        converted["description"] = tool.description
    converted["input_schema"] = tool.parameters or _EMPTY_SCHEMA
    return converted


def _tool_choice_of(choice: ToolChoice) -> dict:
    if choice.mode == NONE:
        return {"type": "none"}  # which takes no disable_parallel_tool_use
    if choice.mode == REQUIRED:
        converted = {"type": "tool", "name": choice.name} if choice.name else {"type": "any"}
    else:
        converted = {"type": "auto"}
    if choice.parallel is False:
        converted["disable_parallel_tool_use"] = True
    return converted


def encode_request(
    conversation: Conversation, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict:
    """
    The Messages request that asks C{model} what C{conversation} asks.

    @raise APIError: 400 for a conversation with no content to send, or
        tool call arguments that are not a JSON object.
    """
    turns = _turns(conversation)
    if not turns:
        raise invalid_request(
            "messages must hold at least one user or assistant message with content.",
            "messages", INVALID_VALUE,
        )
    max_tokens = conversation.max_tokens
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": default_max_tokens if max_tokens is None else max_tokens,
        "messages": turns,
    }
    system = [text for text in conversation.system if text]
    if system:
        request["system"] = "\n\n".join(system)
    stops = [stop for stop in conversation.stop if stop]
    if stops:
        request["stop_sequences"] = stops
    if conversation.temperature is not None:
        request["temperature"] = min(conversation.temperature, MAX_TEMPERATURE)
    for name in ("top_p", "top_k"):
        if getattr(conversation, name) is not None:
            request[name] = getattr(conversation, name)
    if conversation.stream:
        request["stream"] = True
    if conversation.tools:
        request["tools"] = [_tool(tool) for tool in conversation.tools]
        if conversation.tool_choice is not None:
            request["tool_choice"] = _tool_choice_of(conversation.tool_choice)
    if conversation.metadata.get("user_id"):
        request["metadata"] = {"user_id": conversation.metadata["user_id"]}
    return request


#: An image's tokens, its size being unknown here: Anthropic counts about
#: width x height / 750 after scaling an image down to some 1.15
#: megapixels, so a large image (the usual screenshot or photo) costs
#: about 1600.
IMAGE_TOKENS = 1600

#: Each turn's framing (role and separators), as OpenAI's cookbook counts
#: a chat message.
TOKENS_PER_TURN = 3

#: The system prompt Anthropic adds when tools are given: 346 tokens for
#: its recent models with tool_choice auto (159 to 530 by model, in
#: Anthropic's tool use pricing table).
TOOL_PROMPT_TOKENS = 346


def _part_tokens(part: Part) -> int:
    if isinstance(part, Text | Reasoning):
        # Earlier turns' thinking is dropped by Anthropic: counting it errs high.
        return count_tokens(part.text)
    if isinstance(part, Image):
        return IMAGE_TOKENS
    if isinstance(part, ToolCall):
        return count_tokens(part.name) + count_tokens(part.arguments)
    return sum(_part_tokens(p) for p in part.content)


def estimate_input_tokens(conversation: Conversation) -> int:
    """
    An estimate of the prompt tokens of C{conversation}, for
    C{count_tokens} when no Anthropic provider serves the model: its text
    (system, turns, tool calls' names and arguments, tool results, tool
    definitions as JSON) counted by L{count_tokens}, which is llmedge's
    approximation and not Claude's tokenizer, plus fixed costs for images,
    turns and tools. It is consistent (the same request always counts the
    same) and near enough to budget with, never exact.
    """
    total = sum(count_tokens(text) for text in conversation.system)
    for turn in conversation.turns:
        total += TOKENS_PER_TURN + sum(_part_tokens(part) for part in turn.parts)
    if conversation.tools:
        total += TOOL_PROMPT_TOKENS
        total += sum(count_tokens(json.dumps(_tool(tool))) for tool in conversation.tools)
    return total
