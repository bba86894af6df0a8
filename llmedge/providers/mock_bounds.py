# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
What one request may make the mock provider do.

The mock answers on the reactor thread, so the work a request makes it do
holds up every other request, and that work grows with what the client
picks: the prompt, C{n}, C{max_tokens} on a stream, C{echo}, the number of
prompts and inputs, C{dimensions}. Each bound keeps the largest request it
allows under about 100 ms on a small 2-core machine (the README gives the
measurements); past one, the mock answers a 400 (code
C{mock_limit_exceeded}) that names the bound and the field to change. Each
is checked before the work it bounds is done.
"""

from __future__ import annotations

from typing import Any

from llmedge.errors import mock_limit_exceeded

#: Characters of prompt read: counting tokens costs up to 0.1 s a megabyte
#: of text outside ASCII (a token id counts as one character).
MAX_PROMPT_CHARS = 1 << 18
#: Messages and content parts of a chat request: each costs some
#: microseconds to check and count, however short.
MAX_PROMPT_ITEMS = 1 << 13
#: Choices of one completions request: prompts times C{n}.
MAX_CHOICES = 2048
#: Characters of generated (and echoed) text in all the choices together.
MAX_ANSWER_CHARS = 2 << 20
#: Chunks of one stream: one per token of each choice, and two more.
MAX_STREAM_CHUNKS = 1 << 15
#: Embedding values (inputs times dimensions) written as JSON numbers: 2048
#: inputs of 1536 dimensions (OpenAI's text-embedding-3-small), a 67 MB
#: answer made in about 65 ms. A value is about 21 bytes of answer, and
#: making that memory is most of the cost.
MAX_EMBEDDING_VALUES = 2048 * 1536
#: As base64 a value is 5.3 bytes: the API's own largest request, 2048
#: inputs of 3072 dimensions (text-embedding-3-large), 34 MB in about 47 ms.
MAX_BASE64_EMBEDDING_VALUES = 2048 * 3072


def chat_size(messages: list[dict]) -> tuple[int, int]:
    """
    The items (messages and content parts) of a validated chat prompt, and
    the characters that counting its tokens reads.
    """
    items = chars = 0
    for message in messages:
        content = message.get("content")
        items += 1
        chars += len(message["role"]) + len(message.get("name") or "")
        if isinstance(content, str):
            chars += len(content)
        elif content:
            items += len(content)
            chars += sum(len(p["text"]) for p in content if p.get("type") == "text")
    return items, chars


def prompt_size(value: Any) -> int:
    """
    The characters and token ids of a validated C{prompt} or C{input}.
    """
    if isinstance(value, str):
        return len(value)
    return sum(1 if isinstance(v, int) else len(v) for v in value)


def read_at_most(chars: int, param: str, items: int = 0) -> None:
    """
    Refuse a prompt of more than L{MAX_PROMPT_CHARS} characters or
    L{MAX_PROMPT_ITEMS} messages and parts.
    """
    if items > MAX_PROMPT_ITEMS:
        raise mock_limit_exceeded(
            f"The mock provider reads at most {MAX_PROMPT_ITEMS} messages and content "
            f"parts per request; this request has {items}. Send fewer messages.",
            param,
        )
    if chars > MAX_PROMPT_CHARS:
        raise mock_limit_exceeded(
            f"The mock provider reads at most {MAX_PROMPT_CHARS} characters of prompt "
            f"per request; this request has {chars}. Send a shorter '{param}'.",
            param,
        )


def choices_at_most(prompts: int, n: int) -> None:
    if prompts * n > MAX_CHOICES:
        raise mock_limit_exceeded(
            f"The mock provider makes at most {MAX_CHOICES} choices per request "
            f"(prompts times n); this request asks for {prompts} times {n}. "
            "Send fewer prompts per request, or a lower n.",
            "prompt",
        )


def answer_at_most(texts: list[tuple[str, int]], n: int, stream: bool, advice: str) -> None:
    """
    Refuse to make C{n} choices of each of C{texts} (text, tokens) when
    they are more text than L{MAX_ANSWER_CHARS}, or, streamed, more chunks
    than L{MAX_STREAM_CHUNKS}; C{advice} says what to change.
    """
    size = n * sum(len(text) for text, _ in texts)
    if size > MAX_ANSWER_CHARS:
        raise mock_limit_exceeded(
            f"The mock provider answers at most {MAX_ANSWER_CHARS} characters of text "
            f"per request; this request needs {size}. {advice}",
            "max_tokens",
        )
    chunks = n * sum(tokens + 2 for _, tokens in texts)
    if stream and chunks > MAX_STREAM_CHUNKS:
        raise mock_limit_exceeded(
            f"The mock provider streams at most {MAX_STREAM_CHUNKS} chunks per request "
            f"(one per token of each choice); this request needs {chunks}. {advice}",
            "max_tokens",
        )


def values_at_most(inputs: int, dimensions: int, as_base64: bool) -> None:
    as_numbers = MAX_EMBEDDING_VALUES
    as_text = MAX_BASE64_EMBEDDING_VALUES
    if inputs * dimensions > (as_text if as_base64 else as_numbers):
        advice = "" if as_base64 else ", or ask for encoding_format 'base64'"
        raise mock_limit_exceeded(
            f"The mock provider makes at most {as_numbers} embedding values per request "
            f"as JSON numbers, {as_text} as base64; this request asks for {inputs} "
            f"inputs of {dimensions} dimensions ({inputs * dimensions}). Send fewer "
            f"inputs per request or ask for fewer dimensions{advice}.",
            "input",
        )
