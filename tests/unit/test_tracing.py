"""
W3C trace context: which C{traceparent} headers are accepted, how a trace
is continued or started, and the trace id the access log records.
"""

import pytest
from twisted.logger import globalLogPublisher

from llmedge.observe.tracing import MAX_TRACESTATE, TraceContext, parse_traceparent, trace_context
from tests.unit.support import Harness

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01".encode()


def fixed_random(n: int) -> bytes:
    """
    Deterministic "random" bytes: 0x11 for span ids, 0x22 for trace ids.
    """
    return {8: b"\x11" * 8, 16: b"\x22" * 16}[n]


OUR_SPAN = "11" * 8
NEW_TRACE = "22" * 16


# -- parse_traceparent ---------------------------------------------------------


def test_valid_traceparent_is_parsed():
    assert parse_traceparent(VALID) == (TRACE, PARENT, "01")


def test_flags_are_kept_as_sent():
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-00".encode()) == (TRACE, PARENT, "00")


def test_surrounding_whitespace_is_ignored():
    assert parse_traceparent(b"  " + VALID + b" ") == (TRACE, PARENT, "01")


@pytest.mark.parametrize("header", [None, b""])
def test_absent_traceparent_is_none(header):
    assert parse_traceparent(header) is None


@pytest.mark.parametrize("header", [
    f"0-{TRACE}-{PARENT}-01",
    f"000-{TRACE}-{PARENT}-01",
    f"00-{TRACE[:-1]}-{PARENT}-01",
    f"00-{TRACE}0-{PARENT}-01",
    f"00-{TRACE}-{PARENT[:-1]}-01",
    f"00-{TRACE}-{PARENT}0-01",
    f"00-{TRACE}-{PARENT}-1",
    f"00-{TRACE}-{PARENT}-011",
], ids=["version 1", "version 3", "trace 31", "trace 33", "parent 15", "parent 17",
        "flags 1", "flags 3"])
def test_wrong_field_length_is_rejected(header):
    assert parse_traceparent(header.encode()) is None


@pytest.mark.parametrize("header", [
    f"00-{TRACE.upper()}-{PARENT}-01",
    f"00-{TRACE}-{PARENT.upper()}-01",
    f"0A-{TRACE}-{PARENT}-01",
    f"00-{TRACE}-{PARENT}-0A",
], ids=["trace", "parent", "version", "flags"])
def test_uppercase_hex_is_rejected(header):
    assert parse_traceparent(header.encode()) is None


@pytest.mark.parametrize("header", [
    f"00-{TRACE[:-1]}g-{PARENT}-01",
    f"00_{TRACE}_{PARENT}_01",
    f"00-{TRACE}-{PARENT}",
    "garbage",
])
def test_malformed_traceparent_is_rejected(header):
    assert parse_traceparent(header.encode()) is None


def test_version_ff_is_rejected():
    assert parse_traceparent(f"ff-{TRACE}-{PARENT}-01".encode()) is None


def test_all_zero_trace_id_is_rejected():
    assert parse_traceparent(f"00-{'0' * 32}-{PARENT}-01".encode()) is None


def test_all_zero_parent_id_is_rejected():
    assert parse_traceparent(f"00-{TRACE}-{'0' * 16}-01".encode()) is None


@pytest.mark.parametrize("extra", ["-extra", "-"])
def test_version_00_with_extra_fields_is_rejected(extra):
    assert parse_traceparent(VALID + extra.encode()) is None


def test_future_version_with_extra_fields_is_accepted():
    header = f"cc-{TRACE}-{PARENT}-01-extra".encode()
    assert parse_traceparent(header) == (TRACE, PARENT, "01")


def test_future_version_without_extra_fields_is_accepted():
    assert parse_traceparent(f"cc-{TRACE}-{PARENT}-01".encode()) == (TRACE, PARENT, "01")


def test_future_version_needs_a_dash_before_extra_fields():
    assert parse_traceparent(f"cc-{TRACE}-{PARENT}-01extra".encode()) is None


# -- trace_context -------------------------------------------------------------


def test_incoming_trace_is_continued_with_a_new_span():
    context = trace_context(VALID, None, True, fixed_random)
    assert context.trace_id == TRACE
    assert context.span_id == OUR_SPAN
    assert context.parent_id == PARENT
    assert context.flags == "01"


def test_continued_trace_keeps_the_incoming_flags():
    context = trace_context(f"00-{TRACE}-{PARENT}-00".encode(), None, True, fixed_random)
    assert context.flags == "00"
    assert context.traceparent().endswith("-00")


def test_tracestate_is_kept():
    context = trace_context(VALID, b"vendor=abc,other=1", True, fixed_random)
    assert context.state == "vendor=abc,other=1"


def test_tracestate_at_the_maximum_is_kept():
    state = b"v=" + b"x" * (MAX_TRACESTATE - 2)
    assert trace_context(VALID, state, True, fixed_random).state == state.decode()


def test_tracestate_over_the_maximum_is_dropped():
    state = b"v=" + b"x" * (MAX_TRACESTATE - 1)
    context = trace_context(VALID, state, True, fixed_random)
    assert context.trace_id == TRACE
    assert context.state is None


def test_blank_tracestate_is_none():
    assert trace_context(VALID, b"   ", True, fixed_random).state is None


def test_absent_trace_is_started_when_generating():
    context = trace_context(None, None, True, fixed_random)
    assert context == TraceContext(NEW_TRACE, OUR_SPAN, None, "01")


def test_invalid_trace_is_replaced_when_generating():
    context = trace_context(b"00-not-a-trace-01", b"vendor=abc", True, fixed_random)
    assert context.trace_id == NEW_TRACE
    assert context.parent_id is None
    assert context.state is None  # a tracestate means nothing without its traceparent


def test_generated_ids_come_from_the_injected_source():
    first = trace_context(None, None, True, fixed_random)
    second = trace_context(None, None, True, fixed_random)
    assert first == second


def test_real_generated_ids_differ():
    first, second = trace_context(None, None, True), trace_context(None, None, True)
    assert first.trace_id != second.trace_id
    assert first.span_id != second.span_id
    assert len(first.trace_id) == 32 and len(first.span_id) == 16


def test_absent_trace_is_none_when_not_generating():
    assert trace_context(None, None, False, fixed_random) is None


def test_invalid_trace_is_none_when_not_generating():
    assert trace_context(b"garbage", b"vendor=abc", False, fixed_random) is None


def test_incoming_trace_is_continued_even_when_not_generating():
    context = trace_context(VALID, None, False, fixed_random)
    assert (context.trace_id, context.span_id, context.parent_id) == (TRACE, OUR_SPAN, PARENT)


def test_traceparent_names_our_span_as_the_parent():
    context = trace_context(VALID, None, True, fixed_random)
    assert context.traceparent() == f"00-{TRACE}-{OUR_SPAN}-01"


def test_traceparent_of_a_future_version_is_sent_as_version_00():
    context = trace_context(f"cc-{TRACE}-{PARENT}-01-extra".encode(), None, True, fixed_random)
    assert context.traceparent() == f"00-{TRACE}-{OUR_SPAN}-01"


# -- through the service -------------------------------------------------------


@pytest.fixture
def access():
    """
    The access events logged while the test runs.
    """
    events = []

    def keep(event):
        if event.get("log_namespace") == "llmedge.access":
            events.append(event)

    globalLogPublisher.addObserver(keep)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(keep)


def test_access_event_has_the_incoming_trace_id(access):
    Harness().request("GET", "/health", headers={"traceparent": VALID.decode()})
    [found] = access
    assert found["trace_id"] == TRACE
    assert found["span_id"] != PARENT
    assert len(found["span_id"]) == 16


def test_request_without_traceparent_gets_a_new_trace(access):
    edge = Harness()
    edge.site.random_bytes = fixed_random
    edge.request("GET", "/health")
    [found] = access
    assert (found["trace_id"], found["span_id"]) == (NEW_TRACE, OUR_SPAN)


def test_invalid_traceparent_gets_a_new_trace(access):
    edge = Harness()
    edge.site.random_bytes = fixed_random
    edge.request("GET", "/health", headers={"traceparent": VALID.decode().upper()})
    [found] = access
    assert found["trace_id"] == NEW_TRACE


def test_with_tracing_off_a_request_without_traceparent_has_no_trace(access):
    Harness({"ENABLE_TRACING": "false"}).request("GET", "/health")
    [found] = access
    assert found["trace_id"] is None
    assert found["span_id"] is None


def test_with_tracing_off_an_incoming_trace_is_still_continued(access):
    edge = Harness({"ENABLE_TRACING": "false"})
    edge.request("GET", "/health", headers={"traceparent": VALID.decode()})
    [found] = access
    assert found["trace_id"] == TRACE


def test_api_request_is_logged_with_the_incoming_trace_id(access):
    chat = {"model": "mock", "messages": [{"role": "user", "content": "x"}]}
    response = Harness().request("POST", "/v1/chat/completions", chat,
                                 headers={"traceparent": VALID.decode()})
    assert response.status == 200
    [found] = access
    assert found["trace_id"] == TRACE
    assert found["request_id"] == response.header("x-request-id")
