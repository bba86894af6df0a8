# -*- test-case-name: tests.unit.test_dialect_chat -*-
"""
A conversation, as llmedge holds it between a client's dialect and a
provider's: the request half of the internal representation.

Each dialect says the same things in its own places: the system prompt is
a message (Chat Completions), a top-level field (Messages) or
C{instructions} (Responses); a tool call is a field of an assistant
message, a content block, or an item of its own. Here they have one place
each. Content is a list of parts in the order the client gave them, so a
turn holding text, an image and a tool call round-trips.

Fields a dialect has and this does not (C{presence_penalty}, C{seed},
C{logit_bias}, C{reasoning} effort...) are dropped when translating, never
refused: clients set them by habit. A codec refuses only what cannot be
dropped without answering a different question.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from llmedge.errors import invalid_request


@dataclass(frozen=True, slots=True)
class Text:
    text: str


@dataclass(frozen=True, slots=True)
class Image:
    """
    An image, by URL (C{url} set) or inline (C{media_type} and base64
    C{data} set).
    """

    url: str | None = None
    media_type: str | None = None
    data: str | None = None

    def as_url(self) -> str:
        """
        The image as one URL: its own, or a C{data:} URL of the bytes.
        """
        if self.url is not None:
            return self.url
        return f"data:{self.media_type};base64,{self.data}"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """
    The model calling a function: C{arguments} is the JSON text of the
    arguments object, as the model produced it.
    """

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolResult:
    """
    The output of a tool call, sent back by the client: C{content} is its
    text and images.
    """

    call_id: str
    content: tuple[Text | Image, ...]
    is_error: bool = False

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.content if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Reasoning:
    """
    The model's reasoning, where the provider returns it (Anthropic's
    C{thinking} blocks, with the C{signature} that lets them be sent back).
    """

    text: str
    signature: str | None = None


Part = Union[Text, Image, ToolCall, ToolResult, Reasoning]

USER = "user"
ASSISTANT = "assistant"


@dataclass(frozen=True, slots=True)
class Turn:
    """
    One message: C{role} is L{USER} or L{ASSISTANT}; tool results are parts
    of user turns (as Anthropic has them), whatever role the dialect gave
    them.
    """

    role: str
    parts: tuple[Part, ...]

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, Text))


@dataclass(frozen=True, slots=True)
class Tool:
    """
    A function the model may call; C{parameters} is its JSON schema, and
    C{strict} asks for arguments that follow it exactly (OpenAI's dialects).
    """

    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


#: Tool choices: the model decides, must call one, must not call any.
AUTO = "auto"
REQUIRED = "required"
NONE = "none"


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """
    C{mode} is L{AUTO}, L{REQUIRED} or L{NONE}; C{name} forces one
    function (with mode L{REQUIRED}). C{parallel} False forbids more than
    one call per turn; L{None} leaves it to the provider.
    """

    mode: str = AUTO
    name: str | None = None
    parallel: bool | None = None


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """
    Structured output: C{kind} is C{"json_object"} or C{"json_schema"}
    (with the schema's C{name}, C{schema} and C{strict}).
    """

    kind: str
    name: str | None = None
    schema: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(slots=True)
class Conversation:
    """
    What a client asks: the system prompt, the turns, and how to answer.

    @ivar model: the public model name the client asked for.
    @ivar system: the system (and developer) prompts, in order.
    @ivar max_tokens: the most output tokens, or L{None} for the
        provider's default.
    @ivar stop: stop sequences.
    @ivar metadata: the client's string-to-string metadata (Messages'
        C{metadata.user_id} and Chat's C{user} land here as C{user_id}).
    @ivar include_usage: for a stream, whether the client asked for usage
        in it (Chat's C{stream_options}); the other dialects always get it.
    @ivar unsupported: (param, message) for what the decoder left out; see
        L{refuse_unsupported}.
    """

    model: str
    turns: list[Turn]
    system: list[str] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stop: list[str] = field(default_factory=list)
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    response_format: ResponseFormat | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    unsupported: list[tuple[str, str]] = field(default_factory=list)

    def refuse_unsupported(self) -> None:
        """
        Refuse what the client asked that a translation cannot carry.

        A decoder is lenient: it keeps out of the conversation what the
        representation cannot hold (a hosted tool, a stored response to
        continue) and notes it in C{unsupported} as (param, message), since
        passed through to a provider of the client's own dialect the request
        is fine. A provider that translates calls this first, so the client
        gets a 400 naming the parameter instead of a different answer.

        @raise APIError: 400 for the first unsupported parameter.
        """
        if self.unsupported:
            param, message = self.unsupported[0]
            raise invalid_request(message, param, "unsupported_parameter")

    @property
    def last_user_text(self) -> str | None:
        """
        The text of the last user turn that has any (a tool result's text
        counts), or L{None}.
        """
        for turn in reversed(self.turns):
            if turn.role != USER:
                continue
            texts = [p.text for p in turn.parts if isinstance(p, Text | ToolResult)]
            if texts:
                return " ".join(texts)
        return None
