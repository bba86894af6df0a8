"""
Which upstream headers reach the client: an explicit list matched exactly,
values checked and bounded; Retry-After rebuilt as whole seconds.
"""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from llmedge.providers.client import HeaderPairs
from llmedge.providers.headers import (
    MAX_RETRY_AFTER,
    RELAYED,
    clean_value,
    relayed_headers,
    retry_after,
)

NOW = 1_700_000_000.0


def headers(*pairs):
    """
    Headers as the client parses them: names lower-cased, in order.
    """
    return HeaderPairs([(name.lower(), value) for name, value in pairs])


def test_rate_limit_and_processing_headers_are_relayed():
    found = relayed_headers(headers(
        (b"X-RateLimit-Remaining-Requests", b"4999"),
        (b"anthropic-ratelimit-tokens-reset", b"2026-12-04T10:00:00Z"),
        (b"openai-processing-ms", b"12"),
    ))
    assert found == (
        (b"x-ratelimit-remaining-requests", b"4999"),
        (b"anthropic-ratelimit-tokens-reset", b"2026-12-04T10:00:00Z"),
        (b"openai-processing-ms", b"12"),
    )


@pytest.mark.parametrize("name", [
    b"openai-processing-ms-anything", b"x-ratelimit-limit-requests-extra", b"x-ratelimit-",
    b"set-cookie", b"openai-organization", b"x-request-id", b"server", b"content-type",
])
def test_names_off_the_list_are_not_relayed(name):
    assert relayed_headers(headers((name, b"1"))) == ()


@pytest.mark.parametrize("value", [
    b"12\x00", b"a\x01b", b"\x7f", b"caf\xc3\xa9", b"1\x0bx", b"x" * 1025,
])
def test_unsafe_or_long_values_are_dropped_not_the_answer(value):
    found = relayed_headers(headers(
        (b"x-ratelimit-limit-requests", value), (b"openai-processing-ms", b"7")))
    assert found == ((b"openai-processing-ms", b"7"),)


def test_the_value_bound_is_a_parameter():
    h = headers((b"x-ratelimit-limit-tokens", b"123456"))
    assert relayed_headers(h, limit=5) == ()
    assert relayed_headers(h, limit=6) == ((b"x-ratelimit-limit-tokens", b"123456"),)


def test_only_the_first_value_of_a_name_is_relayed():
    found = relayed_headers(headers(
        (b"x-ratelimit-limit-requests", b"1"), (b"x-ratelimit-limit-requests", b"2")))
    assert found == ((b"x-ratelimit-limit-requests", b"1"),)


def test_a_name_whose_first_value_is_dropped_is_not_relayed_at_all():
    found = relayed_headers(headers(
        (b"x-ratelimit-limit-requests", b"1\x00"), (b"x-ratelimit-limit-requests", b"2")))
    assert found == ()


def test_relayed_headers_keep_the_order_their_names_first_came_in():
    found = relayed_headers(headers(
        (b"x-ratelimit-reset-tokens", b"1s"), (b"openai-processing-ms", b"3"),
        (b"x-ratelimit-reset-tokens", b"2s"), (b"x-ratelimit-limit-tokens", b"9")))
    assert [name for name, _ in found] == [
        b"x-ratelimit-reset-tokens", b"openai-processing-ms", b"x-ratelimit-limit-tokens"]


def test_a_value_with_a_bare_carriage_return_is_dropped():
    # The client keeps values as sent; a CR inside one is a control byte.
    assert relayed_headers(headers((b"openai-processing-ms", b"1\r2"))) == ()


def test_every_relayed_name_is_lower_case_and_specific():
    assert all(name == name.lower() and not name.endswith(b"-") for name in RELAYED)


@given(st.binary(max_size=2048))
def test_a_clean_value_is_always_safe_to_send(value):
    cleaned = clean_value(value)
    if cleaned is not None:
        assert len(cleaned) <= 1024
        assert all(32 <= byte < 127 or byte == 9 for byte in cleaned)


@pytest.mark.parametrize("pairs,seconds", [
    ([(b"retry-after", b"7")], 7),
    ([(b"retry-after", b"0")], 1),
    ([(b"retry-after", b"1.2")], 2),
    ([(b"retry-after-ms", b"250"), (b"retry-after", b"9")], 1),
    ([(b"retry-after-ms", b"2500")], 3),
    ([(b"retry-after", b"99999999")], MAX_RETRY_AFTER),
    ([(b"retry-after", b"Tue, 14 Nov 2023 22:13:50 GMT")], 30),
])
def test_retry_after_is_whole_seconds_at_least_one(pairs, seconds):
    assert retry_after(headers(*pairs), NOW) == seconds


@pytest.mark.parametrize("value", [
    b"soon", b"-5", b"nan", b"inf", b"1e999", b"x" * 100, b"Tue, 14 Nov 2023 22:13:50",
])
def test_a_retry_after_not_understood_is_none(value):
    assert retry_after(headers((b"retry-after", value)), NOW) is None


def test_a_bad_retry_after_ms_falls_back_to_retry_after():
    assert retry_after(headers((b"retry-after-ms", b"x"), (b"retry-after", b"4")), NOW) == 4


@pytest.mark.parametrize("pairs,seconds", [
    ([(b"x-ratelimit-reset-requests", b"1s")], 1),
    ([(b"x-ratelimit-reset-tokens", b"6m0s")], 360),
    ([(b"x-ratelimit-reset-requests", b"250ms"), (b"x-ratelimit-reset-tokens", b"2.5s")], 3),
    ([(b"x-ratelimit-reset-requests", b"20s"), (b"x-ratelimit-remaining-requests", b"5"),
      (b"x-ratelimit-reset-tokens", b"2s"), (b"x-ratelimit-remaining-tokens", b"0")], 2),
    ([(b"retry-after", b"4"), (b"x-ratelimit-reset-tokens", b"60s")], 4),
])
def test_openai_s_reset_headers_say_the_wait_when_nothing_else_does(pairs, seconds):
    assert retry_after(headers(*pairs), NOW) == seconds


@pytest.mark.parametrize("value", [b"soon", b"1x", b"5", b"1s garbage"])
def test_a_reset_not_understood_says_nothing(value):
    assert retry_after(headers((b"x-ratelimit-reset-requests", value)), NOW) is None
