# -*- test-case-name: tests.unit.test_tokens -*-
"""
Tests for L{llmedge.tokens}.
"""

import pytest
from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from llmedge import tokens
from llmedge.tokens import (
    TOKENS_PER_OTHER_PART,
    content_tokens,
    count_message_tokens,
    count_tokens,
    first_tokens,
    split_tokens,
)

SAMPLES = [
    "",
    "Hello, world!",
    "  leading and trailing  ",
    "   ",
    "line one\n\nline two\n",
    "naïve café — ünïcödé 😀!",
    "x=1+2; print(x)",
    "tabs\tand\r\nCRLF",
]


class SplitTokensTests(SynchronousTestCase):
    def test_pieces_join_back_to_text(self):
        for text in SAMPLES:
            self.assertEqual("".join(split_tokens(text)), text)

    def test_words_and_punctuation_carry_leading_whitespace(self):
        self.assertEqual(
            split_tokens("Hello, big world!"), ["Hello", ",", " big", " world", "!"]
        )

    def test_trailing_whitespace_joins_last_piece(self):
        self.assertEqual(split_tokens("hi there \n"), ["hi", " there \n"])

    def test_whitespace_only_text_is_one_piece(self):
        self.assertEqual(split_tokens(" \n "), [" \n "])

    def test_empty_text_has_no_pieces(self):
        self.assertEqual(split_tokens(""), [])

    def test_each_punctuation_character_is_a_piece(self):
        self.assertEqual(split_tokens("?!."), ["?", "!", "."])


class CountTokensTests(SynchronousTestCase):
    def test_count_is_number_of_pieces(self):
        for text in SAMPLES:
            self.assertEqual(count_tokens(text), len(split_tokens(text)), text)

    def test_count_of_sentence(self):
        self.assertEqual(count_tokens("The quick brown fox."), 5)


class ContentTokensTests(SynchronousTestCase):
    def test_null_content_counts_nothing(self):
        self.assertEqual(content_tokens(None), 0)

    def test_text_parts_are_counted_separately(self):
        parts = [{"type": "text", "text": "one two"}, {"type": "text", "text": "three"}]
        self.assertEqual(content_tokens(parts), 3)

    def test_other_parts_count_a_fixed_amount(self):
        parts = [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
        ]
        self.assertEqual(content_tokens(parts), 1 + TOKENS_PER_OTHER_PART)


class CountMessageTokensTests(SynchronousTestCase):
    def test_no_messages_is_reply_priming(self):
        self.assertEqual(count_message_tokens([]), 3)

    def test_message_is_framing_role_and_content(self):
        messages = [{"role": "user", "content": "Hello world"}]
        self.assertEqual(count_message_tokens(messages), 3 + 1 + 2 + 3)

    def test_name_adds_one_and_its_tokens(self):
        plain = [{"role": "user", "content": "Hi"}]
        named = [{"role": "user", "content": "Hi", "name": "alice"}]
        self.assertEqual(
            count_message_tokens(named), count_message_tokens(plain) + 1 + 1
        )

    def test_messages_add_up(self):
        one = {"role": "system", "content": "Be brief."}
        two = {"role": "user", "content": [{"type": "text", "text": "Why?"}]}
        self.assertEqual(
            count_message_tokens([one, two]),
            count_message_tokens([one]) + count_message_tokens([two]) - 3,
        )

    def test_null_content_counts_framing_only(self):
        messages = [{"role": "assistant", "content": None}]
        self.assertEqual(count_message_tokens(messages), 3 + 1 + 3)


# -- counting and cutting without a match per token --------------------------------

#: Text rich in what the tokenizer tells apart: ASCII word characters,
#: punctuation and every kind of whitespace, and the same outside ASCII
#: (letters, CJK, its punctuation, no-break and ideographic spaces, emoji).
ALPHABET = "ab_1 .,-\t\n\r\x0b\x0c\x1c\x1féß你好，。\u3000\xa0\x85😀٣"
texts = st.text(alphabet=ALPHABET, max_size=40) | st.text(max_size=40)

BOUNDED = settings(max_examples=400, deadline=None, database=None)


@BOUNDED
@given(texts)
def test_count_is_the_number_of_pieces_ascii_or_not(text):
    assert count_tokens(text) == len(split_tokens(text))


@BOUNDED
@given(texts, st.integers(min_value=1, max_value=45), st.sampled_from([1, 2, 3, 4096]))
def test_first_tokens_are_the_first_pieces_joined(text, limit, block):
    pieces = split_tokens(text)
    expected = "".join(pieces[:limit]) if len(pieces) > limit else None
    original, tokens._BLOCK = tokens._BLOCK, block
    try:
        assert first_tokens(text, limit) == expected
    finally:
        tokens._BLOCK = original


@pytest.mark.parametrize("text", ["a.b c", "a.b\u3000c"], ids=["ascii", "not-ascii"])
def test_whitespace_before_the_cut_goes_with_the_next_token(text):
    assert first_tokens(text, 3) == "a.b"


def test_text_within_the_limit_is_not_cut():
    assert first_tokens("one two", 2) is None
