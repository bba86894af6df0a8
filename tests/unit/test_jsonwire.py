"""
L{llmedge.jsonwire}: JSON read as the standard library reads it (with
C{NaN} and the infinities refused), whatever C{msgspec} refuses decided by
the standard library; written compact, in UTF-8.
"""

import json
import math

import pytest

from hypothesis import given, settings, strategies as st

from llmedge.jsonwire import json_bytes, loads, sendable_bytes


def lenient(data: bytes):
    return loads(data, constants=True)


def stdlib(raw: bytes):
    def refuse(name):
        raise ValueError(name)
    return json.loads(raw, parse_constant=refuse)


@pytest.mark.parametrize("raw", [
    b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}',
    b'{"a": 1, "a": 2}',  # the last wins
    b"123456789012345678901234567890",  # past 64 bits: an int still
    b"-1e400",  # past a double: -inf, as the standard library reads it
    b'"\\ud83d\\ude00"',
    b'"\\ud800"',  # a lone surrogate: read, the caller refuses it
    b" [1.5, true, null] ",
])
def test_what_is_read_is_what_the_standard_library_reads(raw):
    assert repr(loads(raw)) == repr(stdlib(raw))


@pytest.mark.parametrize(("raw", "error"), [
    (b"NaN", ValueError),
    (b'{"a": Infinity}', ValueError),
    (b"{", ValueError),
    (b'"\xff"', UnicodeDecodeError),
    (b'{"a": 1} x', ValueError),
    (b"[" * 100_000 + b"]" * 100_000, RecursionError),
])
def test_what_is_refused_is_refused_as_the_standard_library_refuses_it(raw, error):
    with pytest.raises(error):
        stdlib(raw)
    with pytest.raises(error):
        loads(raw)


def test_documents_are_written_compact_in_utf8():
    assert json_bytes({"a": [1, 2.5, None, True], "é": "ü", "n": 10**30}) == (
        '{"a":[1,2.5,null,true],"é":"ü","n":1000000000000000000000000000000}'.encode())


def test_nan_is_never_written():
    written = json_bytes({"x": math.nan, "y": math.inf})
    assert json.loads(written, parse_constant=lambda name: pytest.fail(name)) == {
        "x": None, "y": None}


def test_a_lone_surrogate_cannot_be_written_as_utf8():
    with pytest.raises(UnicodeEncodeError):
        json_bytes({"x": "\ud800"})


# -- an upstream's events: constants read as json.loads reads them ------------------


def outcome(parse, data: bytes):
    """
    What C{parse} makes of C{data}: its value, or its error's type and text.
    """
    try:
        return "value", parse(data)
    except Exception as e:  # noqa: BLE001 - the error is the outcome
        return type(e), str(e)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=300, deadline=None, database=None)
@given(json_values, st.booleans())
def test_with_constants_reads_any_json_as_json_loads_does(value, ascii):
    data = json.dumps(value, ensure_ascii=ascii, separators=(",", ":")).encode(
        "utf-8", "surrogatepass")
    assert outcome(lenient, data) == outcome(json.loads, data)


@settings(max_examples=500, deadline=None, database=None)
@given(st.binary(max_size=40).map(lambda b: b"{" + b))
def test_with_constants_fails_as_json_loads_fails_on_any_bytes(data):
    assert outcome(lenient, data) == outcome(json.loads, data)


@pytest.mark.parametrize("data", [
    b'{"a":1}', b' {"a":1}', b'{"a":1} ', b'{"a":1}\n', b'{"a":1}x', b'{"a":1}{}', b"{",
    b"{}", b"[1]", b'"s"', b"", b"{\x00", '{"a":"\u00e9"}'.encode("utf-16-le"),
    b'\xef\xbb\xbf{"a":1}', b'{"a":"\xff"}', b'{"a":"\\ud800"}', b'{"a":"\xed\xa0\x80"}',
], ids=repr)
def test_with_constants_gives_what_json_loads_gives(data):
    assert outcome(lenient, data) == outcome(json.loads, data)


def test_a_body_sent_upstream_goes_even_with_a_lone_surrogate():
    assert sendable_bytes({"x": "é"}) == '{"x":"é"}'.encode()
    assert json.loads(sendable_bytes({"x": "a\ud800"})) == {"x": "a\ud800"}
