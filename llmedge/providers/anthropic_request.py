# -*- test-case-name: tests.unit.test_anthropic_translate -*-
"""
OpenAI chat completions requests rewritten as Anthropic Messages requests.

The two APIs say the same things in different places: Anthropic takes the
system prompt as a top-level field, wants user and assistant turns to
alternate, carries tool calls and their results as content blocks inside
those turns, and requires C{max_tokens}. Everything here is a pure function
of the client's (already validated) body, so the provider only sends what
comes out.

Fields with no Anthropic equivalent are dropped rather than refused, as
clients set them by habit (C{presence_penalty}, C{frequency_penalty},
C{logit_bias}, C{seed}, C{logprobs}, C{top_logprobs}, C{service_tier}...).
That includes C{response_format}: Anthropic has no JSON mode, so a
C{json_object} or C{json_schema} request gets the model's ordinary answer,
which the prompt usually already asks to be JSON. What cannot be dropped
without answering a different question is refused with OpenAI's 400: C{n}
above 1, content parts Anthropic cannot take, non-function tools.
"""

from __future__ import annotations

import json
from typing import Any

from llmedge.errors import invalid_request
from llmedge.checks import MAX_DEPTH, nests_deeper_than

DEFAULT_MAX_TOKENS = 4096

# Anthropic's temperature range is [0, 1], OpenAI's [0, 2]. Clamping keeps
# every OpenAI value valid, with "as random as allowed" for the top half,
# rather than rescaling, which would change the meaning of common values
# such as 0.7 that clients tuned against the model they now reach.
MAX_TEMPERATURE = 1.0


def _text_of(content: Any) -> str:
    """
    The text of a string or a list of text parts, parts joined without a
    separator (they are pieces of one text in OpenAI's model).
    """
    if isinstance(content, str):
        return content
    return "".join(
        part.get("text") or "" for part in content or ()
        if part.get("type") == "text"
    )


def _image(part: dict, path: str) -> dict:
    """
    An C{image_url} part as an Anthropic image block: a C{data:} URL becomes
    inline base64, an http(s) URL is left for Anthropic to fetch.
    """
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    path += ".image_url.url"
    if not isinstance(url, str):
        raise invalid_request("An image_url part needs a url.", path)
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    header, comma, data = url.partition(",")
    media_type, _, encoding = header.removeprefix("data:").partition(";")
    if not (url.startswith("data:") and comma and encoding == "base64"):
        raise invalid_request(
            "Image URLs must be http(s) URLs or base64 data: URLs.", path
        )
    return {
        "type": "image",
        "source": {"type": "base64", "media_type": media_type, "data": data},
    }


def _blocks(content: Any, path: str) -> list[dict]:
    """
    Message content as a list of Anthropic content blocks. Empty text is
    left out: Anthropic refuses empty text blocks.
    """
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for j, part in enumerate(content or ()):
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part, f"{path}[{j}]"))
        elif kind != "refusal":  # a past refusal is no input for the model
            raise invalid_request(
                f"Content parts of type {str(kind)[:40]!r} are not supported "
                "by this model's provider.",
                f"{path}[{j}].type",
            )
    return blocks


def _tool_uses(message: dict, path: str) -> list[dict]:
    """
    An assistant's C{tool_calls} as C{tool_use} blocks. OpenAI carries the
    arguments as JSON text, Anthropic as the object itself, so text that
    is not a JSON object cannot be passed on, nor one nested deeper than a
    body may be (it could not be serialised again).
    """
    uses = []
    for j, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        where = f"{path}.tool_calls[{j}].function.arguments"
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError, RecursionError):
            arguments = None
        if not isinstance(arguments, dict) or nests_deeper_than(arguments, MAX_DEPTH):
            raise invalid_request(
                "Tool call arguments must be a JSON object nested at most "
                f"{MAX_DEPTH} levels deep.", where, "invalid_value"
            )
        uses.append({
            "type": "tool_use",
            "id": call.get("id"),
            "name": function.get("name"),
            "input": arguments,
        })
    return uses


def _turn(message: dict, path: str) -> dict:
    """
    One user, assistant or tool message as an Anthropic turn. Content stays
    a string when it is a plain string, as Anthropic accepts both.
    """
    role, content = message["role"], message.get("content")
    if role == "tool":
        result = {
            "type": "tool_result",
            "tool_use_id": message["tool_call_id"],
            "content": _text_of(content),
        }
        return {"role": "user", "content": [result]}
    if role == "function":
        raise invalid_request(
            "Messages with the deprecated role 'function' are not supported "
            "by this model's provider; use 'tool' messages.",
            f"{path}.role",
        )
    uses = _tool_uses(message, path) if role == "assistant" else []
    if isinstance(content, str) and not uses:
        return {"role": role, "content": content}
    return {"role": role, "content": _blocks(content, f"{path}.content") + uses}


def _merge(turns: list[dict], turn: dict) -> None:
    """
    Append C{turn}, folding it into the last turn if that has the same
    role: Anthropic requires alternation, and every C{tool_result} answering
    one assistant turn must arrive in the single user turn that follows it.
    """
    if not turns or turns[-1]["role"] != turn["role"]:
        turns.append(turn)
        return
    last = turns[-1]
    last["content"] = _blocks_of(last["content"]) + _blocks_of(turn["content"])


def _blocks_of(content: str | list[dict]) -> list[dict]:
    return _blocks(content, "") if isinstance(content, str) else content


def _tool(tool: dict, path: str) -> dict:
    if tool.get("type") != "function":
        raise invalid_request(
            "Only function tools are supported by this model's provider.",
            f"{path}.type",
        )
    function = tool.get("function") or {}
    converted = {
        "name": function.get("name"),
        "input_schema": function.get("parameters")
        or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        converted["description"] = function["description"]
    return converted


def _tool_choice(choice: Any, parallel: Any) -> dict | None:
    """
    C{tool_choice} and C{parallel_tool_calls} as Anthropic's single
    C{tool_choice} object, or L{None} to leave Anthropic's default (auto).
    """
    if choice is None:
        converted = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif choice == "none":
        converted = {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        converted = {"type": "tool", "name": name}
    else:
        raise invalid_request(
            "tool_choice must be 'none', 'auto', 'required' or a function.",
            "tool_choice",
            "invalid_value",
        )
    if parallel is False and (converted or {}).get("type") != "none":
        converted = {"type": "auto", **(converted or {})}
        converted["disable_parallel_tool_use"] = True
    return converted


def to_messages_request(
    body: dict, model: str, default_max_tokens: int = DEFAULT_MAX_TOKENS
) -> dict:
    """
    The Anthropic Messages request that asks C{model} what C{body}, an
    OpenAI chat completions request, asks.

    @raise APIError: 400 for what Anthropic cannot be asked (see the module
        docstring).
    """
    if (body.get("n") or 1) > 1:
        raise invalid_request(
            "This model's provider can only generate one choice; n must be 1.",
            "n",
            "invalid_value",
        )
    system, turns = [], []
    for i, message in enumerate(body["messages"]):
        if message["role"] in ("system", "developer"):
            system.append(_text_of(message.get("content")))
        else:
            _merge(turns, _turn(message, f"messages[{i}]"))
    if not turns:
        raise invalid_request(
            "messages must hold at least one message that is not a system "
            "or developer message.",
            "messages",
            "invalid_value",
        )
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": body.get("max_completion_tokens")
        or body.get("max_tokens")
        or default_max_tokens,
        "messages": turns,
    }
    if system:
        request["system"] = "\n\n".join(system)
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else stop or []
    if any(stops):
        request["stop_sequences"] = [s for s in stops if s]
    if body.get("temperature") is not None:
        request["temperature"] = min(body["temperature"], MAX_TEMPERATURE)
    if body.get("top_p") is not None:
        request["top_p"] = body["top_p"]
    if body.get("stream") is True:
        request["stream"] = True
    if body.get("tools"):
        request["tools"] = [
            _tool(tool, f"tools[{k}]") for k, tool in enumerate(body["tools"])
        ]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            request["tool_choice"] = choice
    if body.get("user"):
        request["metadata"] = {"user_id": body["user"]}
    return request

