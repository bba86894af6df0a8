# -*- test-case-name: tests.unit.test_tokens -*-
"""
Tests for L{llmedge.providers.tokens}.
"""

from twisted.trial.unittest import SynchronousTestCase

from llmedge.providers.tokens import (
    TOKENS_PER_OTHER_PART,
    content_tokens,
    count_message_tokens,
    count_tokens,
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
