# -*- test-case-name: tests.unit.test_tokens -*-
"""
A deterministic approximation of token counting, for the mock provider.

Clients developing against the embedded mock read C{usage} to test their
accounting, budgets and truncation logic. What they need from it is that the
numbers are consistent (the same text always counts the same; streamed
pieces add up to the non-streamed count; C{max_tokens} cuts where the count
says) and plausible (about one token per word). Exact BPE counts would need a
vocabulary file and an external package, and would still be wrong for any
non-OpenAI model behind a route, so a word-and-punctuation split is enough.

A token here is a run of word characters (C{\\w+}) or one other
non-whitespace character, together with the whitespace before it. Whitespace
at the very end of the text is attached to the last token, and text made only
of whitespace is one token, so the pieces always join back to the text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PIECE = re.compile(r"\s*(?:\w+|[^\w\s])(?:\s+\Z)?|\s+\Z")
_WORDS = re.compile(r"\w+")
_NOT_WORD = re.compile(r"\W")

#: Each ASCII byte as its class: C{a} for a word character, a space for
#: whitespace, C{.} for anything else, by the very classes C{_PIECE} uses.
_ASCII_CLASSES = bytes(
    ord("a") if re.fullmatch(r"\w", chr(i)) else ord(" ") if re.fullmatch(r"\s", chr(i))
    else ord(".")
    for i in range(256)
)

#: How many characters L{first_tokens} counts at a time.
_BLOCK = 4096


# Per OpenAI's cookbook ("How to count tokens with tiktoken"): every message
# costs 3 tokens of framing, a "name" costs 1 more, and 3 tokens prime the
# reply.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

# A content part that is not text (an image, audio, a file) has no text to
# count; it is charged a flat 85 tokens, OpenAI's base cost of a low-detail
# image, so such requests report a plausible, stable non-zero cost.
TOKENS_PER_OTHER_PART = 85


def split_tokens(text: str) -> list[str]:
    """
    Split C{text} into token pieces whose concatenation is exactly C{text}.

    The mock streams one piece per content delta and truncates at a piece
    boundary, so joining deltas always reproduces the non-streamed reply.
    """
    return _PIECE.findall(text)


def _core_tokens(text: str) -> int:
    """
    The tokens of C{text} not counting the rule for text of whitespace only:
    the runs of word characters plus the other non-whitespace characters.

    Counted without a regular expression match per token, which costs 200
    to 400 ns each: ASCII text (most text by far) becomes one class byte
    per character, counted with C{bytes} methods, 5 ms a megabyte; other
    text has each word run replaced by one letter, after which every
    character left that is not whitespace is one token, 30 to 100 ms a
    megabyte (CJK text the slowest) where a match per token took up to 450.
    Counting is on every request's path when token limits are on.
    """
    if text.isascii():
        classes = text.encode("ascii").translate(_ASCII_CLASSES)
        return classes.count(b".") + (b" " + classes.replace(b".", b" ")).count(b" a")
    return len("".join(_WORDS.sub("a", text).split()))


def count_tokens(text: str) -> int:
    """
    How many pieces L{split_tokens} would return for C{text}, without
    building them.
    """
    count = _core_tokens(text)
    if count == 0 and text:
        return 1
    return count


def first_tokens(text: str, limit: int) -> str | None:
    """
    C{text} cut after its first C{limit} pieces, or L{None} when it has no
    more than that: C{"".join(split_tokens(text)[:limit])}, at the cost of
    counting the text up to the cut rather than splitting it all.

    The text is counted a block at a time, each block ending where no word
    runs across (before a character that is not a word character), and
    split only in the block where the cut falls.
    """
    if limit >= len(text):
        return None  # every piece has a character at least
    start, before = 0, 0
    while start < len(text):
        boundary = _NOT_WORD.search(text, min(start + _BLOCK, len(text)))
        end = boundary.start() if boundary else len(text)
        inside = _core_tokens(text[start:end])
        if before + inside > limit:
            pieces = _PIECE.finditer(text, start)
            for match, _ in zip(pieces, range(limit - before)):
                start = match.end()
            # Whitespace before the next token is that token's.
            return text[:start].rstrip()
        before += inside
        start = end
    return None


def content_tokens(content: Any) -> int:
    """
    The tokens of a message's C{content}: a string, L{None}, or a list of
    parts, of which only C{{"type": "text"}} parts have text to count.

    Parts are counted one by one rather than joined, so a part boundary never
    merges two words into one token.
    """
    if content is None:
        return 0
    if isinstance(content, str):
        return count_tokens(content)
    total = 0
    for part in content:
        if isinstance(part, Mapping) and part.get("type") == "text":
            total += count_tokens(part.get("text") or "")
        else:
            total += TOKENS_PER_OTHER_PART
    return total


def count_message_tokens(messages: Iterable[Mapping[str, Any]]) -> int:
    """
    The prompt tokens of a chat request, by OpenAI's cookbook formula: per
    message 3 + role + content (+ the name and 1 more when a name is given),
    plus 3 for the reply priming.

    Other message fields (tool calls, tool call ids) are not counted, as in
    the cookbook.
    """
    total = TOKENS_REPLY_PRIMING
    for message in messages:
        total += TOKENS_PER_MESSAGE
        total += count_tokens(message.get("role") or "")
        total += content_tokens(message.get("content"))
        if "name" in message:
            total += TOKENS_PER_NAME + count_tokens(message.get("name") or "")
    return total
