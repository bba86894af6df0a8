"""
JSON logs: the record made of each twisted.logger event, the observers that
write and filter them, and the access event every request ends with.
"""

import io
import json
import sys

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, LogPublisher, Logger, globalLogPublisher
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from llmedge.observe.logging import JSONObserver, filtered, make_observer, observer, to_record
from tests.unit.support import Harness, raw_request

CHAT = {"model": "mock", "messages": [{"role": "user", "content": "hello there"}]}
ROUTE = "/v1/chat/completions"


def event(**fields):
    """
    A log event as twisted.logger makes them, with C{fields} on top.
    """
    return {
        "log_format": "hello {name}",
        "log_level": LogLevel.info,
        "log_namespace": "llmedge.test",
        "log_time": 1_800_000_000.123456,
        "name": "world",
        **fields,
    }


def strict_json(line: str):
    """
    Parse C{line} as JSON proper: NaN and Infinity are not JSON.
    """
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    return json.loads(line, parse_constant=refuse)


def lines(out: io.StringIO) -> list[str]:
    text = out.getvalue()
    assert text == "" or text.endswith("\n")
    return text.splitlines()


# -- to_record -----------------------------------------------------------------


def test_ts_is_utc_iso_8601_with_milliseconds():
    assert to_record(event())["ts"] == "2027-01-15T08:00:00.123Z"


def test_level_is_the_level_name():
    assert to_record(event(log_level=LogLevel.warn))["level"] == "warn"
    assert to_record(event(log_level=LogLevel.error))["level"] == "error"


def test_logger_is_the_namespace():
    assert to_record(event())["logger"] == "llmedge.test"


def test_msg_is_the_formatted_text():
    assert to_record(event())["msg"] == "hello world"


def test_record_of_a_real_event():
    captured = []
    log = Logger(namespace="llmedge.example", observer=LogPublisher(captured.append))
    log.warn("{count} requests from {who}", count=3, who="tests")
    record = to_record(captured[0])
    assert record["level"] == "warn"
    assert record["logger"] == "llmedge.example"
    assert record["msg"] == "3 requests from tests"
    assert record["ts"].endswith("Z")
    assert record["count"] == 3 and record["who"] == "tests"


def test_plain_fields_are_copied():
    record = to_record(event(
        text="t", number=7, ratio=0.5, flag=False, nothing=None,
        items=[1, "two", [3.0]], mapping={"a": {"b": [None]}}, pair=(1, 2)))
    assert record["text"] == "t"
    assert record["number"] == 7
    assert record["ratio"] == 0.5
    assert record["flag"] is False
    assert record["nothing"] is None
    assert record["items"] == [1, "two", [3.0]]
    assert record["mapping"] == {"a": {"b": [None]}}
    assert list(record["pair"]) == [1, 2]


class Secretive:
    def __repr__(self):
        return "Secretive(sk-do-not-log)"

    __str__ = __repr__


@pytest.mark.parametrize("value", [
    Secretive(),
    {"a", "set"},
    b"bytes",
    {1: "non-string key"},
    [Secretive()],
    {"nested": Secretive()},
], ids=["object", "set", "bytes", "int-key dict", "list with object", "dict with object"])
def test_objects_are_not_copied(value):
    record = to_record(event(thing=value))
    assert "thing" not in record
    assert "sk-do-not-log" not in json.dumps(record)


def test_a_request_object_is_not_copied():
    record = to_record(event(request=DummyRequest([b"v1", b"models"])))
    assert "request" not in record


def test_logging_fields_are_not_copied():
    record = to_record(event(log_source=object(), log_extra="x", format="legacy %s",
                             message=("m",), isError=0, why="w", time=5.0))
    assert not any(key.startswith("log_") for key in record)
    for legacy in ("format", "message", "isError", "why", "time"):
        assert legacy not in record


def test_failure_adds_error_and_traceback():
    try:
        raise ValueError("bad value")
    except ValueError:
        failure = Failure()
    record = to_record(event(log_failure=failure))
    assert record["error"] == "bad value"
    assert "ValueError" in record["traceback"]
    assert "test_failure_adds_error_and_traceback" in record["traceback"]


def test_event_without_failure_has_no_traceback():
    assert "traceback" not in to_record(event())


def test_event_without_level_or_namespace_still_has_them():
    record = to_record({"log_format": "bare", "log_time": 0})
    assert record["level"] == "info"
    assert record["logger"] == "-"
    assert record["ts"] == "1970-01-01T00:00:00.000Z"


# -- JSONObserver --------------------------------------------------------------


def test_json_observer_writes_one_line_per_event():
    out = io.StringIO()
    write = JSONObserver(out)
    write(event(name="one"))
    write(event(name="two"))
    written = lines(out)
    assert [strict_json(line)["msg"] for line in written] == ["hello one", "hello two"]


def test_json_observer_keeps_non_ascii_text_readable():
    out = io.StringIO()
    JSONObserver(out)(event(name="Zoë"))
    assert "Zoë" in out.getvalue()
    assert strict_json(lines(out)[0])["name"] == "Zoë"


def test_line_breaks_in_a_message_stay_in_one_line():
    out = io.StringIO()
    JSONObserver(out)(event(name="two\nlines"))
    assert len(lines(out)) == 1
    assert strict_json(lines(out)[0])["msg"] == "hello two\nlines"


@pytest.mark.parametrize("broken", ["unbalanced {", "{missing}", "{name!z}", "{name.nope}"])
def test_broken_format_string_still_gives_one_json_line(broken):
    out = io.StringIO()
    JSONObserver(out)(event(log_format=broken))
    [line] = lines(out)
    record = strict_json(line)
    assert record["level"] == "info"
    assert record["msg"]


def test_event_that_cannot_be_a_record_still_gives_one_json_line():
    out = io.StringIO()
    JSONObserver(out)(event(log_time="not a time"))
    [line] = lines(out)
    record = strict_json(line)
    assert record["level"] == "error"
    assert record["msg"].startswith("unloggable event")


def test_broken_format_string_does_not_dump_objects():
    record = to_record(event(log_format="unbalanced {", secret=Secretive()))
    assert "sk-do-not-log" not in json.dumps(record)


class UnRepresentable:
    def __repr__(self):
        raise RuntimeError("no repr")

    __str__ = __repr__


@pytest.mark.parametrize("broken", ["unbalanced {", "{bad}"])
def test_unrepresentable_event_does_not_dump_objects(broken):
    record = to_record(event(log_format=broken, secret=Secretive(), bad=UnRepresentable()))
    assert "sk-do-not-log" not in json.dumps(record)


def test_non_finite_float_does_not_break_the_json():
    out = io.StringIO()
    JSONObserver(out)(event(ratio=float("nan")))
    strict_json(lines(out)[0])


def test_lone_surrogate_does_not_escape_the_observer():
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    JSONObserver(out)(event(model="\udc80"))
    out.seek(0)
    assert len(out.read().splitlines()) == 1


# -- filters and factories -----------------------------------------------------


def collected():
    events = []
    return events, events.append


def test_filter_drops_events_below_its_level():
    events, keep = collected()
    only_warnings = filtered(keep, "warn")
    only_warnings(event(log_level=LogLevel.info, name="info"))
    only_warnings(event(log_level=LogLevel.debug, name="debug"))
    assert events == []


def test_filter_passes_events_at_or_above_its_level():
    events, keep = collected()
    only_warnings = filtered(keep, "warn")
    only_warnings(event(log_level=LogLevel.warn, name="warn"))
    only_warnings(event(log_level=LogLevel.error, name="error"))
    assert [e["name"] for e in events] == ["warn", "error"]


@pytest.mark.parametrize("level,passed", [("info", True), ("warn", False)])
def test_an_event_without_a_level_counts_as_info(level, passed):
    # Twisted's legacy log API makes events without a log_level.
    events, keep = collected()
    filtered(keep, level)({"message": ("legacy",), "isError": 0})
    assert bool(events) is passed


def test_a_plain_event_keeps_its_fields_and_none_of_twisted_s():
    record = to_record(event(log_format="{msg}", msg="GET / 200", log_plain=True,
                             log_logger=object(), log_source=None, status=200, key=None))
    assert record == {"ts": "2027-01-15T08:00:00.123Z", "level": "info",
                      "logger": "llmedge.test", "msg": "GET / 200", "status": 200,
                      "key": None, "name": "world"}


def test_log_level_from_the_environment_filters():
    out = io.StringIO()
    log = observer(out, environ={"LOG_LEVEL": "error"})
    log(event(log_level=LogLevel.warn, name="dropped"))
    log(event(log_level=LogLevel.error, name="kept"))
    assert [strict_json(line)["msg"] for line in lines(out)] == ["hello kept"]


def test_log_level_defaults_to_info():
    out = io.StringIO()
    log = observer(out, environ={})
    log(event(log_level=LogLevel.debug, name="dropped"))
    log(event(log_level=LogLevel.info, name="kept"))
    assert [strict_json(line)["msg"] for line in lines(out)] == ["hello kept"]


def test_unknown_log_level_falls_back_to_info():
    out = io.StringIO()
    log = observer(out, environ={"LOG_LEVEL": "chatty"})
    log(event(log_level=LogLevel.debug, name="dropped"))
    log(event(log_level=LogLevel.info, name="kept"))
    assert [strict_json(line)["msg"] for line in lines(out)] == ["hello kept"]


def never_open(path):
    raise AssertionError(f"opened {path!r}")


@pytest.mark.parametrize("logfile", [None, "-"])
def test_plugin_observer_writes_to_stdout_without_a_logfile(monkeypatch, logfile):
    stdout = io.StringIO()
    monkeypatch.setattr(sys, "stdout", stdout)
    make_observer("info", logfile, never_open)(event())
    assert strict_json(lines(stdout)[0])["msg"] == "hello world"


def test_plugin_observer_writes_to_the_opened_logfile(monkeypatch):
    stdout, logfile, opened = io.StringIO(), io.StringIO(), []
    monkeypatch.setattr(sys, "stdout", stdout)

    def opener(path):
        opened.append(path)
        return logfile

    make_observer("info", "/var/log/llmedge.log", opener)(event())
    assert opened == ["/var/log/llmedge.log"]
    assert strict_json(lines(logfile)[0])["msg"] == "hello world"
    assert stdout.getvalue() == ""


def test_plugin_observer_filters_by_its_level():
    logfile = io.StringIO()
    log = make_observer("error", "llmedge.log", lambda path: logfile)
    log(event(log_level=LogLevel.warn))
    assert logfile.getvalue() == ""


# -- the access event ----------------------------------------------------------


@pytest.fixture
def logged():
    """
    Every event logged while the test runs.
    """
    events = []
    keep = events.append
    globalLogPublisher.addObserver(keep)
    try:
        yield events
    finally:
        globalLogPublisher.removeObserver(keep)


def access(events):
    return [e for e in events if e.get("log_namespace") == "llmedge.access"]


def only_access(events):
    [found] = access(events)
    return found


def test_each_request_logs_one_access_event(logged):
    edge = Harness()
    ids = [edge.request("GET", path).header("x-request-id")
           for path in ("/health", "/v1/models", "/nowhere")]
    assert [e["request_id"] for e in access(logged)] == ids


def test_access_event_describes_an_answered_call(logged, toml):
    edge = Harness({}, toml('[providers.mock]\nkind = "mock"\nlatency = 2\n'))
    body = json.dumps(CHAT).encode()
    connection = edge.connect(StringTransport(peerAddress=IPv4Address("TCP", "10.1.2.3", 5555)))
    connection.send(raw_request("POST", ROUTE, body, {"Content-Type": "application/json"}))
    edge.reactor.advance(2)
    response = connection.response()
    assert response.status == 200
    found = only_access(logged)
    usage = response.json()["usage"]
    assert found["request_id"] == response.header("x-request-id")
    assert found["method"] == "POST"
    assert found["route"] == ROUTE
    assert found["status"] == 200
    assert found["duration_ms"] == pytest.approx(2000.0)
    assert found["upstream_ms"] == pytest.approx(2000.0)
    assert found["overhead_ms"] == pytest.approx(0.0)
    assert found["request_bytes"] == len(body)
    assert found["response_bytes"] == len(response.body)
    assert found["key"] is None
    assert found["model"] == "mock"
    assert found["provider"] == "mock"
    assert found["prompt_tokens"] == usage["prompt_tokens"]
    assert found["completion_tokens"] == usage["completion_tokens"]
    assert found["stream"] is False
    assert found["client"] == "10.1.2.3"
    assert found["error"] is None
    assert found["aborted"] is False


def test_access_event_of_a_stream(logged, toml):
    edge = Harness({}, toml('[providers.mock]\nkind = "mock"\nstream_interval = 0.5\n'))
    connection = edge.connect()
    connection.send(raw_request("POST", ROUTE, dict(CHAT, stream=True)))
    while not connection.response().complete:
        edge.reactor.advance(0.5)
    found = only_access(logged)
    assert found["stream"] is True
    assert found["first_token_ms"] == pytest.approx(500.0)
    assert found["response_bytes"] == len(connection.response().body)
    assert found["completion_tokens"] > 0


def test_access_event_carries_a_trace_id(logged):
    response = Harness().request("GET", "/health")
    found = only_access(logged)
    assert found["request_id"] == response.header("x-request-id")
    assert len(found["trace_id"]) == 32
    assert len(found["span_id"]) == 16


def test_request_that_never_reached_the_cache_logs_cache_null(logged):
    Harness().request("GET", "/health")
    record = to_record(only_access(logged))
    assert "cache" in record
    assert json.loads(json.dumps(record))["cache"] is None


def test_access_event_names_what_the_cache_did(logged, monkeypatch):
    edge = Harness()
    recorder = edge.service.site.recorder
    started = recorder.exchange

    def cached():
        # what the cache step writes on a request it answered
        exchange = started()
        exchange.cache = "hit"
        return exchange

    monkeypatch.setattr(recorder, "exchange", cached)
    edge.request("GET", "/health")
    assert to_record(only_access(logged))["cache"] == "hit"


def test_unknown_path_is_logged_under_route_other_with_its_path(logged):
    Harness().request("GET", "/no/such/thing")
    found = only_access(logged)
    assert found["route"] == "other"
    assert found["path"] == "/no/such/thing"
    assert found["error"] == "unknown_url"


def test_known_route_does_not_repeat_its_path(logged):
    Harness().request("GET", "/health")
    assert only_access(logged)["path"] is None


def test_long_fields_are_shortened(logged):
    Harness().request("GET", "/" + "x" * 500)
    path = only_access(logged)["path"]
    assert path == "/" + "x" * 199 + "..."


KEY = "sk-log-secret-1"
WRONG = "sk-log-wrong-2"


@pytest.fixture
def guarded():
    return Harness({"AUTH_ENABLED": "true", "API_KEYS": KEY,
                    "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_BURST": "1"})


def test_access_event_names_the_key_by_its_id(logged, guarded):
    guarded.request("GET", "/v1/models", headers={"Authorization": f"Bearer {KEY}"})
    key = only_access(logged)["key"]
    assert key == guarded.service.keys.lookup(KEY).id
    assert KEY not in key


def test_wrong_key_is_logged_as_invalid_api_key(logged, guarded):
    response = guarded.request("GET", "/v1/models", headers={"x-api-key": WRONG})
    assert response.status == 401
    found = only_access(logged)
    assert found["status"] == 401
    assert found["error"] == "invalid_api_key"
    assert found["key"] is None


def test_missing_key_is_logged_as_missing_api_key(logged, guarded):
    guarded.request("GET", "/v1/models")
    assert only_access(logged)["error"] == "missing_api_key"


def test_rate_limited_request_is_logged_with_its_key(logged, guarded):
    for _ in range(2):
        guarded.request("GET", "/v1/models", headers={"x-api-key": KEY})
    refused = access(logged)[-1]
    assert refused["status"] == 429
    assert refused["error"] == "rate_limit_exceeded"
    assert refused["key"] == guarded.service.keys.lookup(KEY).id


def test_body_refused_while_reading_is_logged_once_as_413(logged):
    edge = Harness({"MAX_REQUEST_SIZE": "100"})
    connection = edge.connect()
    connection.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")
    response = connection.response()
    assert response.status == 413
    connection.lose()
    found = only_access(logged)
    assert found["status"] == 413
    assert found["error"] == "request_too_large"
    assert found["method"] == "POST"
    assert found["route"] == ROUTE
    assert found["request_id"] == response.header("x-request-id")
    assert found["request_bytes"] == 0


def test_disconnected_client_is_logged_once_as_499_aborted(logged, toml):
    edge = Harness({}, toml('[providers.mock]\nkind = "mock"\nlatency = 5\n'))
    connection = edge.connect()
    connection.send(raw_request("POST", ROUTE, CHAT))
    edge.reactor.advance(1)
    connection.lose()
    edge.reactor.advance(10)
    found = only_access(logged)
    assert found["status"] == 499
    assert found["aborted"] is True
    assert found["duration_ms"] == pytest.approx(1000.0)


def test_disconnected_client_wait_on_the_provider_is_upstream_time(logged, toml):
    edge = Harness({}, toml('[providers.mock]\nkind = "mock"\nlatency = 5\n'))
    connection = edge.connect()
    connection.send(raw_request("POST", ROUTE, CHAT))
    edge.reactor.advance(1)
    connection.lose()
    found = only_access(logged)
    assert found["upstream_ms"] == pytest.approx(1000.0)
    assert found["overhead_ms"] == pytest.approx(0.0)


def test_access_event_serialises_to_json(logged):
    Harness().request("POST", ROUTE, CHAT)
    out = io.StringIO()
    JSONObserver(out)(only_access(logged))
    record = strict_json(lines(out)[0])
    assert record["logger"] == "llmedge.access"
    assert record["msg"].startswith(f"POST {ROUTE} 200 ")
    assert record["status"] == 200


def test_no_log_line_carries_a_key(logged, guarded):
    attempts = [
        {"Authorization": f"Bearer {KEY}"},
        {"x-api-key": KEY},
        {"Authorization": f"Bearer {KEY}", "x-api-key": KEY},
        {"Authorization": f"Bearer {WRONG}"},
        {"x-api-key": WRONG},
        {"Authorization": f"Bearer {WRONG}", "x-api-key": KEY},
        {"Authorization": f"Basic {KEY}"},
    ]
    for headers in attempts:
        guarded.request("POST", ROUTE, CHAT, headers=headers)
        guarded.request("GET", "/v1/models", headers=headers)
        guarded.reactor.advance(60)  # refill the bucket
    statuses = [e["status"] for e in access(logged)]
    assert 200 in statuses and 401 in statuses and 429 in statuses
    assert len(access(logged)) == 2 * len(attempts)
    text = "\n".join(json.dumps(to_record(e), default=str) for e in logged)
    assert KEY not in text
    assert WRONG not in text
    assert "Bearer" not in text


def test_timestamps_as_datetime_writes_them():
    """
    The per-second cache of the date and time gives the text datetime
    gives, at every millisecond edge.
    """
    import random
    from datetime import UTC, datetime

    from llmedge.observe.logging import _timestamp

    rng = random.Random(4)
    samples = [0.0, 1764227350.001, 1764227350.9999996, 1764227351.0005]
    samples += [1764227350 + rng.random() * 5 for _ in range(2000)]
    for when in samples:
        expected = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
        assert _timestamp(when) == expected.replace("+00:00", "Z"), when
