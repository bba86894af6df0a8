# -*- test-case-name: tests.unit.test_cache_key -*-
"""
Tests for L{llmedge.cache.key}: which requests share a cache entry.
"""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from llmedge.cache.key import (
    IGNORED_FIELDS,
    IGNORED_FIELDS_WITH_METADATA,
    cache_key,
)

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hello"}],
    "temperature": 0.7,
}


def key(body, scope="global", route="chat.completions", **kwargs):
    return cache_key(scope, route, body, **kwargs)


def test_key_is_a_sha256_hex_digest():
    digest = key(BODY)
    assert len(digest) == 64
    assert int(digest, 16) >= 0


def test_same_request_gives_same_key():
    assert key(BODY) == key(json.loads(json.dumps(BODY)))


def test_key_order_does_not_matter():
    reordered = {
        "temperature": 0.7,
        "messages": [{"content": "Hello", "role": "user"}],
        "model": "gpt-4o-mini",
    }
    assert key(reordered) == key(BODY)


def test_whitespace_in_the_wire_body_does_not_matter():
    compact = '{"model":"m","messages":[{"role":"user","content":"Hi"}]}'
    spaced = '{ "model" : "m",\n  "messages" : [ { "role" : "user", "content" : "Hi" } ] }'
    assert key(json.loads(compact)) == key(json.loads(spaced))


def test_ignored_fields_do_not_matter():
    noisy = dict(
        BODY,
        stream=True,
        stream_options={"include_usage": True},
        user="end-user-42",
    )
    assert key(noisy) == key(BODY)


def test_ignored_fields_are_stream_stream_options_and_user():
    assert IGNORED_FIELDS == {"stream", "stream_options", "user"}


def test_only_top_level_fields_are_ignored():
    nested = dict(BODY, messages=[{"role": "user", "content": "Hello", "user": "x"}])
    assert key(nested) != key(BODY)


def test_metadata_matters_by_default():
    assert key(dict(BODY, metadata={"run": "1"})) != key(BODY)


def test_metadata_ignored_when_the_route_says_so():
    tagged = dict(BODY, metadata={"run": "1"})
    assert key(tagged, ignore=IGNORED_FIELDS_WITH_METADATA) == key(
        BODY, ignore=IGNORED_FIELDS_WITH_METADATA
    )


def test_every_other_field_matters():
    for name, value in [
        ("model", "gpt-4o"),
        ("messages", [{"role": "user", "content": "hello"}]),
        ("temperature", 0.8),
        ("seed", 1),
        ("n", 2),
    ]:
        assert key(dict(BODY, **{name: value})) != key(BODY), name


def test_int_float_and_bool_stay_distinct():
    keys = {key(dict(BODY, n=value)) for value in (1, 1.0, True, "1")}
    assert len(keys) == 4


def test_float_spellings_that_parse_equal_key_equal():
    assert key(json.loads('{"temperature": 0.70}')) == key(
        json.loads('{"temperature": 0.7}')
    )


def test_string_escapes_that_parse_equal_key_equal():
    assert key(json.loads('{"prompt": "caf\\u00e9"}')) == key({"prompt": "café"})


def test_lone_surrogate_gives_a_key_rather_than_an_error():
    body = json.loads('{"prompt": "\\ud800"}')
    assert key(body) != key({"prompt": ""})


def test_scope_separates_entries():
    assert key(BODY, scope="key-a") != key(BODY, scope="key-b")


def test_route_separates_entries():
    assert key(BODY, route="chat.completions") != key(BODY, route="completions")


def test_parts_are_joined_unambiguously():
    assert key(BODY, scope="a", route="bc") != key(BODY, scope="ab", route="c")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


def shuffled(value, rng):
    """
    C{value} with every object's keys in a random order.
    """
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {name: shuffled(child, rng) for name, child in items}
    if isinstance(value, list):
        return [shuffled(child, rng) for child in value]
    return value


@given(st.dictionaries(st.text(), json_values, max_size=6), st.randoms())
def test_any_object_and_its_key_shuffled_copy_give_the_same_key(body, rng):
    assert key(shuffled(body, rng)) == key(body)
