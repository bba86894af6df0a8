"""
The hostile-answer strategies (L{tests.hostile_answers}) generate what
they say: bytes under 64 KiB, framed as their description says, event
streams made only of event-stream lines. Few examples: this checks the
generators, the properties of llmedge live with the tests that use them.
"""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings, strategies as st

from tests.hostile_answers import (
    BOM, MAX_ANSWER, answers, described_answers, framings, sse_bodies,
)

SMALL = settings(max_examples=40, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow])
framed_bodies = st.binary(max_size=300).flatmap(lambda body: st.tuples(st.just(body),
                                                                         framings(body)))


def unchunk(data: bytes) -> bytes:
    body = b""
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2:]


@SMALL
@given(st.booleans().flatmap(described_answers))
def test_every_answer_is_bytes_under_64_kib(answer):
    assert isinstance(answer.raw, bytes) and 0 < len(answer.raw) < MAX_ANSWER


@SMALL
@given(st.booleans().flatmap(described_answers))
def test_an_answer_with_a_status_starts_with_an_http_1_status_line(answer):
    final = answer.raw
    while re.match(rb"HTTP/1\.1 1\d\d ", final):  # informational heads first
        final = final.partition(b"\r\n\r\n")[2]
    if answer.status is not None:
        assert re.match(rb"HTTP/1\.[01] %d( |\r\n)" % answer.status, final)


@SMALL
@given(answers(stream=True))
def test_answers_draws_bytes(raw):
    assert isinstance(raw, bytes)


@SMALL
@given(framed_bodies)
def test_a_length_framing_announces_the_length_it_is_named_after(drawn):
    body, (lines, framed, name) = drawn
    lengths = [int(line.split(b": ")[1]) for line in lines if line.startswith(b"content-length")
               and line.split(b": ")[1].isdigit()]
    if name == "length":
        assert lengths == [len(body)] and framed == body
    elif name == "length-short":
        assert lengths[0] < len(body) or len(body) == 0
    elif name == "length-long":
        assert lengths[0] > len(body)
    elif name == "length-conflict":
        assert len(set(lengths)) == 2


@SMALL
@given(framed_bodies)
def test_a_good_chunked_framing_decodes_to_the_body(drawn):
    body, (lines, framed, name) = drawn
    if name == "chunked":
        assert lines == [b"transfer-encoding: chunked"] and unchunk(framed) == body


@SMALL
@given(framed_bodies)
def test_a_close_framing_sends_the_body_bare(drawn):
    body, (lines, framed, name) = drawn
    if name == "close":
        assert framed == body and not any(b"length" in line for line in lines)


@SMALL
@given(sse_bodies())
def test_an_event_stream_is_made_of_event_stream_lines(drawn):
    body, kind = drawn
    lines = re.split(rb"\r\n|\r|\n", body.removeprefix(BOM))
    assert all(line == b"" or re.match(rb"(data|event|id|retry)?:", line) for line in lines)
    if not kind.endswith("-no-done"):
        assert [line for line in lines if line][-1] in (b"data: [DONE]", b"data:[DONE]")
