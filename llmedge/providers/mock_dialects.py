# -*- test-case-name: tests.unit.test_fronts -*-
"""
What the mock adds for agents and for the other dialects: a call of the
tool a request forces, and answers to Responses and Messages clients.

An agent developed against the mock needs to see a turn that ends in a
tool call at least once, so a C{tool_choice} that forces a function is
answered with a call of it (arguments C{{}}). A client of another dialect
is answered as a chat client would be (its conversation encoded as a chat
request, the mock's chat answer decoded as a reply), so every dialect gets
the same deterministic content.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zope.interface import alsoProvides

from llmedge.dialects.chat import encode_request as encode_chat
from llmedge.dialects.chat_reply import decode_reply as decode_chat_reply
from llmedge.dialects.conversation import Conversation
from llmedge.dialects.reply import IReplyStream, Reply, TextDelta, events_of
from llmedge.providers.paced import PacedStream
from llmedge.tokens import count_message_tokens, count_tokens, split_tokens


def forced_tool(body: dict) -> str | None:
    """
    The function a chat request forces a call of (C{tool_choice}
    C{"required"}: the first one offered; a named function: that one), or
    L{None}.
    """
    choice, tools = body.get("tool_choice"), body.get("tools") or ()
    names = [(t.get("function") or {}).get("name") for t in tools
             if t.get("type", "function") == "function"]
    if choice == "required" and names:
        return names[0]
    if isinstance(choice, dict) and choice.get("type") == "function":
        return (choice.get("function") or {}).get("name")
    return None


def tool_call_document(head: dict, body: dict, tool: str, call_id: str) -> dict[str, Any]:
    """
    The C{chat.completion} calling C{tool} with no arguments.
    """
    call = {"id": call_id, "type": "function", "function": {"name": tool, "arguments": "{}"}}
    prompt, completion = count_message_tokens(body["messages"]), count_tokens(tool) + 1
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion}
    message = {"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]}
    return {**head, "choices": [{"index": 0, "message": message, "logprobs": None,
                                 "finish_reason": "tool_calls"}], "usage": usage}


def conversed(chat: Callable[[dict, str, bool], dict], conversation: Conversation, model: str,
              reactor, interval: float) -> Reply | PacedStream:
    """
    The mock's answer to a client of another dialect: a L{Reply}, or
    streamed one token piece per event, as chat streams are.

    @param chat: the mock's chat answer for a body (not streamed).
    """
    conversation.refuse_unsupported()
    body = encode_chat(conversation, model)
    body.pop("stream", None)
    body.pop("stream_options", None)
    reply = decode_chat_reply(chat(body, model, False))
    if not conversation.stream:
        return reply
    events = []
    for item in events_of(reply):
        if isinstance(item, TextDelta):
            events.extend(TextDelta(piece) for piece in split_tokens(item.text))
        else:
            events.append(item)
    stream = PacedStream(reactor, interval, events, reply.usage.openai())
    alsoProvides(stream, IReplyStream)
    return stream
