# -*- test-case-name: tests.unit.test_fake_upstream_dialects -*-
"""
What a request's words ask of the fake upstream, whatever its dialect.

The model name's options say how the fake misbehaves
(L{llmedge.testing.upstream_options}); a few words in the last user
message say what kind of answer it gives, so a test can ask for a tool call
or a reasoning trace through any front end of a proxy and check that it
comes back, translated or not, in every wire format:

  - C{"use tool"}, with tools offered: a call of the first tool with
    C{{"x": 1}} (L{TOOL_INPUT}), its JSON streamed in two pieces
    (L{TOOL_INPUT_PIECES}) because providers split arguments anywhere.
    C{tool_choice} is read as the providers read it: C{"none"} never
    calls, a named tool is called whatever the words, C{"required"} (and
    Anthropic's C{"any"}) always calls the first.
  - C{"think"}: the reasoning L{THOUGHT} before the answer, where the
    dialect has a place for it.

The rules and constants live here, once, so the chat, Responses and
Messages fakes cannot disagree about when to call a tool or what to think;
each wire module only knows where its dialect keeps the messages and tools.
"""

from __future__ import annotations

from typing import Any

TOOL_INPUT = {"x": 1}
#: The tool input's JSON, split where a real stream might split it.
TOOL_INPUT_PIECES = ('{"x":', "1}")
#: The whole arguments string, as OpenAI's formats carry it.
TOOL_ARGUMENTS = "".join(TOOL_INPUT_PIECES)
#: The OpenAI formats' id of the call (Anthropic's is its own C{toolu_} id).
CALL_ID = "call_fake_1"
#: What the fake thinks before answering "think".
THOUGHT = "Thinking about it."
#: The signature of Anthropic's thinking block, which clients send back.
SIGNATURE = "sig-fake"

_TEXT_PARTS = ("text", "input_text")


def text_of(content: Any) -> str:
    """
    The text of a message's content: a string, or the text parts of a list
    (C{text} in chat and Messages, C{input_text} in Responses).
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"] for part in content
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS
            and isinstance(part.get("text"), str)
        )
    return ""


def last_user_text(messages: Any) -> str:
    """
    The text of the last user message in a list of messages (or of
    Responses input items); a bare string is itself the user's input, as
    Responses allows. C{""} when there is none, or when a tool's result
    came after it (chat's C{tool} message, Responses'
    C{function_call_output}): the turn answers the tool, not the words, so
    a conversation that asked for a tool gets a text answer once the
    tool has answered, as from a model. (Anthropic's tool results are user
    messages without text, which reads the same.)
    """
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if not isinstance(message, dict):
            continue
        if message.get("role") == "tool" or message.get("type") == "function_call_output":
            return ""
        if message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def _choice(value: Any) -> tuple[str, str | None]:
    """
    C{tool_choice} in any dialect's spelling, as C{(kind, name)}: kind
    C{"none"}, C{"any"}, C{"auto"} or C{"named"}. The spellings do not
    collide: chat's C{{"type": "function", "function": {"name"}}},
    Responses' C{{"type": "function", "name"}}, Anthropic's
    C{{"type": "tool", "name"}}; C{"required"} is Anthropic's C{"any"}.
    """
    kind = value.get("type") if isinstance(value, dict) else value
    if kind == "none":
        return "none", None
    if kind in ("required", "any"):
        return "any", None
    if kind in ("function", "tool") and isinstance(value, dict):
        function = value.get("function")
        name = function.get("name") if isinstance(function, dict) else value.get("name")
        return "named", name if isinstance(name, str) else None
    return "auto", None


def tool_to_call(names: list[str], choice: Any, text: str) -> str | None:
    """
    The name of the tool the answer calls, or L{None} for a text answer.

    @param names: the names of the tools offered, in order.
    @param choice: the request's C{tool_choice}, as sent.
    @param text: the last user message's text.
    """
    if not names:
        return None
    kind, name = _choice(choice)
    if kind == "none":
        return None
    if kind == "named":
        return name if name in names else None
    if kind == "any" or "use tool" in text:
        return names[0]
    return None


def thinks(text: str) -> bool:
    """
    Whether the last user message asks the fake to think aloud.
    """
    return "think" in text
