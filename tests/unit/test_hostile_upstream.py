"""
The hostile fake upstream (L{llmedge.testing.hostile}) driven in memory:
its byte builders, its request reader, its well-formed answers, scripts,
named scenarios (first bytes, back-pressure, pacing) and its log, with
time on a L{Clock} and connections on a L{StringTransport} that pauses its
producer past a small buffer, as a real transport does.
"""

from __future__ import annotations

import base64
import json

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from llmedge.testing.hostile import HostileFactory
from llmedge.testing.hostile_log import Scripts
from llmedge.testing.hostile_request import BadRequest, RequestReader
from llmedge.testing.hostile_scenarios import (
    CHAT_PREFIX, SCENARIOS, BadScenario, Script, parse_scenario, parse_script,
)
from llmedge.testing.hostile_wire import (
    TEXT, chat_chunk, chat_completion, chunk, head, response, sse,
)

CHAT = "/v1/chat/completions"


def raw_request(method: str, path: str, body=None, headers: dict | None = None) -> bytes:
    data = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
    lines = [f"{method} {path} HTTP/1.1", "Host: upstream.test",
             f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def split_response(raw: bytes) -> tuple[bytes, dict[str, str], bytes, bytes]:
    """
    One length-delimited or chunked response off the front of C{raw}:
    its status line, headers (last value wins), body and what follows.
    """
    head_bytes, _, rest = raw.partition(b"\r\n\r\n")
    status, *lines = head_bytes.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = b""
        while True:
            size, _, rest = rest.partition(b"\r\n")
            size = int(size, 16)
            if size == 0:
                return status, headers, body, rest[2:]
            body, rest = body + rest[:size], rest[size + 2:]
    length = int(headers.get("content-length", "0"))
    return status, headers, rest[:length], rest[length:]


def data_events(body: bytes) -> list[bytes]:
    return [line[6:] for line in body.split(b"\n") if line.startswith(b"data: ")]


class BoundedTransport(StringTransport):
    """
    A L{StringTransport} that pauses its streaming producer once more than
    C{bufferSize} bytes are unread, as Twisted's TCP transport does; the
    test "drains" it with L{drain}.
    """

    bufferSize = 1000

    def write(self, data: bytes) -> None:
        super().write(data)
        if len(self.value()) > 100 * self.bufferSize:  # fail, rather than loop for ever
            raise AssertionError("the writer went on writing while paused")
        if self.producer is not None and self.streaming and len(self.value()) > self.bufferSize:
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """
        Take what was written and tell the producer the buffer is empty.
        """
        data = self.value()
        self.clear()
        if self.producer is not None:
            self.producer.resumeProducing()
        return data


def turns(fake, transport, count: int) -> bytes:
    """
    What is written over C{count} rounds of letting the reactor turn
    until the writer is paused, then draining the buffer.
    """
    written = []
    for _ in range(count):
        fake.clock.advance(0)
        written.append(transport.drain())
    return b"".join(written)


class Fake:
    def __init__(self) -> None:
        self.clock = Clock()
        self.factory = HostileFactory(self.clock)

    def connect(self):
        protocol = self.factory.buildProtocol(None)
        transport = BoundedTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def send(self, method, path, body=None, headers=None):
        protocol, transport = self.connect()
        protocol.dataReceived(raw_request(method, path, body, headers))
        return protocol, transport

    def answer(self, method, path, body=None, headers=None):
        _, transport = self.send(method, path, body, headers)
        return split_response(transport.value())

    def chat(self, model="gpt", headers=None, **fields):
        return self.send("POST", CHAT, {"model": model, "messages": [], **fields}, headers)

    def script(self, request_id, pieces, interval=0.0, then="close"):
        document = {"id": request_id, "pieces": [base64.b64encode(p).decode() for p in pieces],
                    "interval": interval, "then": then}
        return self.answer("POST", "/_hostile/script", document)

    def log(self):
        return json.loads(self.answer("GET", "/_hostile/log")[2])


@pytest.fixture
def fake():
    return Fake()


def lose(protocol) -> None:
    protocol.connectionLost(Failure(ConnectionDone()))


# -- the byte builders -----------------------------------------------------------------


def test_response_with_length_framing_counts_the_body():
    assert response(200, [("X-A", "1")], b"hello") == (
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello")


def test_response_with_chunked_framing_ends_with_the_last_chunk():
    assert response(502, {}, b"abc", "chunked").endswith(
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")


def test_response_with_close_framing_sends_the_body_bare():
    assert response(200, (), b"{", "close") == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{"


def test_head_takes_a_whole_status_line_and_keeps_duplicate_and_odd_headers():
    assert head(b"HTTP/1.0 299 Odd", [(b"A", b"x\x00y"), (b"A", b"2")]) == (
        b"HTTP/1.0 299 Odd\r\nA: x\x00y\r\nA: 2\r\n\r\n")


def test_an_empty_chunk_is_no_chunk():
    assert chunk(b"") == b"" and chunk(b"ab") == b"2\r\nab\r\n"


def test_sse_frames_documents_fields_and_multi_line_data_with_the_line_end_asked():
    framed = sse({"a": 1}, [("event", "ping"), ("id", 3)], "x\ny", line_end=b"\r\n")
    assert framed == (b'data: {"a":1}\r\n\r\nevent: ping\r\nid: 3\r\n\r\n'
                      b"data: x\r\ndata: y\r\n\r\n")


def test_chat_chunk_takes_extra_top_level_fields():
    document = chat_chunk(choices=[], usage={"total_tokens": 1})
    assert document["object"] == "chat.completion.chunk" and document["choices"] == []


# -- the request reader ------------------------------------------------------------------


def test_a_request_split_anywhere_is_read_once_whole():
    reader = RequestReader()
    raw = raw_request("POST", CHAT, {"model": "m"})
    for i in range(len(raw) - 1):
        reader.feed(raw[i:i + 1])
        assert reader.next() is None
    reader.feed(raw[-1:])
    assert reader.next().json() == {"model": "m"}


def test_a_chunked_request_body_is_joined():
    reader = RequestReader()
    reader.feed(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n")
    assert reader.next().body == b"abcde"


def test_a_head_past_64_kib_is_refused_with_431():
    reader = RequestReader()
    reader.feed(b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 65536)
    with pytest.raises(BadRequest) as caught:
        reader.next()
    assert caught.value.status == 431


def test_content_length_beside_transfer_encoding_is_refused():
    reader = RequestReader()
    reader.feed(b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(BadRequest):
        reader.next()


def test_a_malformed_request_is_answered_400_and_closed(fake):
    protocol, transport = fake.connect()
    protocol.dataReceived(b"NOT HTTP\r\n\r\n")
    assert transport.value().startswith(b"HTTP/1.1 400 ") and transport.disconnecting


# -- well-formed answers -----------------------------------------------------------------


def test_chat_is_answered_with_a_chat_completion(fake):
    status, headers, body, _ = split_response(fake.chat()[1].value())
    assert status == b"HTTP/1.1 200 OK" and headers["content-type"] == "application/json"
    assert json.loads(body) == chat_completion(model="gpt")


def test_a_chat_stream_ends_with_the_usage_chunk_and_done(fake):
    _, transport = fake.chat(stream=True, stream_options={"include_usage": True})
    _, headers, body, _ = split_response(transport.value())
    events = data_events(body)
    assert headers["content-type"] == "text/event-stream" and events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks[:-1]) == TEXT
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 10


def test_a_chat_stream_without_include_usage_has_no_usage(fake):
    _, _, body, _ = split_response(fake.chat(stream=True)[1].value())
    assert b"usage" not in body and body.endswith(b"data: [DONE]\n\n")


def test_completions_are_answered_with_a_text_completion(fake):
    _, _, body, _ = fake.answer("POST", "/v1/completions", {"model": "m", "prompt": "p"})
    assert json.loads(body)["choices"][0]["text"] == TEXT


def test_embeddings_has_one_vector_per_input(fake):
    _, _, body, _ = fake.answer("POST", "/v1/embeddings", {"model": "e", "input": ["a", "b"]})
    assert [d["index"] for d in json.loads(body)["data"]] == [0, 1]


def test_messages_are_answered_with_an_anthropic_message(fake):
    _, _, body, _ = fake.answer("POST", "/v1/messages", {"model": "c", "max_tokens": 9})
    assert json.loads(body)["content"] == [{"type": "text", "text": TEXT}]


def test_a_messages_stream_is_anthropics_event_sequence(fake):
    _, _, body, _ = fake.answer("POST", "/v1/messages", {"model": "c", "stream": True})
    events = [line[7:] for line in body.split(b"\n") if line.startswith(b"event: ")]
    assert events[0] == b"message_start" and events[-1] == b"message_stop"


def test_an_unknown_path_is_a_json_404(fake):
    status, _, body, _ = fake.answer("POST", "/v1/nothing", {})
    assert status.startswith(b"HTTP/1.1 404") and "error" in json.loads(body)


def test_the_connection_is_kept_for_the_next_request(fake):
    protocol, transport = fake.chat()
    protocol.dataReceived(raw_request("POST", CHAT, {"model": "second"}))
    _, _, _, rest = split_response(transport.value())
    assert json.loads(split_response(rest)[2])["model"] == "second"
    assert not transport.disconnecting


def test_connection_close_is_honoured(fake):
    _, transport = fake.chat(headers={"Connection": "close"})
    assert transport.disconnecting


# -- scripts -----------------------------------------------------------------------------


def test_a_registered_script_answers_its_request_id_then_closes(fake):
    fake.script("req-1", [b"HTTP/1.1 200 OK\r\n", b"garbage"])
    _, transport = fake.chat(headers={"x-request-id": "req-1"})
    assert transport.value() == b"HTTP/1.1 200 OK\r\ngarbage" and transport.disconnecting


def test_a_script_is_used_once(fake):
    fake.script("req-1", [b"x"])
    fake.chat(headers={"x-request-id": "req-1"})
    _, transport = fake.chat(headers={"x-request-id": "req-1"})
    assert transport.value().startswith(b"HTTP/1.1 200 OK\r\nContent-Type: application/json")


def test_script_pieces_are_paced_by_the_interval(fake):
    fake.script("req-1", [b"a", b"b", b"c"], interval=2.0)
    _, transport = fake.chat(headers={"x-request-id": "req-1"})
    fake.clock.advance(1.9)
    assert transport.value() == b"a"
    fake.clock.advance(0.1)
    assert transport.value() == b"ab"


def test_a_script_that_keeps_the_connection_serves_the_next_request(fake):
    fake.script("req-1", [response(200, [], b"ok")], then="keep")
    protocol, transport = fake.chat(headers={"x-request-id": "req-1"})
    protocol.dataReceived(raw_request("POST", CHAT, {"model": "next"}))
    _, _, first, rest = split_response(transport.value())
    assert first == b"ok" and json.loads(split_response(rest)[2])["model"] == "next"


def test_a_script_that_hangs_answers_nothing_more(fake):
    fake.script("req-1", [b"HTTP/1.1 200 OK\r\n"], then="hang")
    protocol, transport = fake.chat(headers={"x-request-id": "req-1"})
    protocol.dataReceived(raw_request("POST", CHAT, {"model": "next"}))
    assert transport.value() == b"HTTP/1.1 200 OK\r\n" and not transport.disconnecting


def test_a_script_that_aborts_waits_until_its_bytes_left_the_buffer(fake):
    fake.script("req-1", [b"partial"], then="abort")
    _, transport = fake.chat(headers={"x-request-id": "req-1"})
    assert not transport.disconnected  # still buffered: aborting now would drop it
    transport.drain()
    assert transport.disconnected  # StringTransport's mark of abortConnection


def test_a_script_in_the_body_is_played(fake):
    hostile = {"pieces": [base64.b64encode(b"HTTP/1.1 204 No Content\r\n\r\n").decode()],
               "then": "close"}
    _, transport = fake.chat(hostile=hostile)
    assert transport.value() == b"HTTP/1.1 204 No Content\r\n\r\n"
    assert fake.log()[0]["scenario"] == "body"


def test_a_malformed_script_is_refused(fake):
    status, _, _, _ = fake.answer("POST", "/_hostile/script", {"id": "x", "pieces": ["%%"]})
    assert status.startswith(b"HTTP/1.1 400")


@pytest.mark.parametrize("document", [
    [], {"pieces": "x"}, {"pieces": [1]}, {"pieces": [], "then": "explode"},
    {"pieces": [], "interval": -1},
])
def test_parse_script_refuses_bad_shapes(document):
    with pytest.raises(BadScenario):
        parse_script(document)


def test_the_script_store_forgets_the_oldest_past_its_bound():
    scripts = Scripts(limit=2)
    for request_id in ("a", "b", "c"):
        scripts.add(request_id, Script((b"x",)))
    assert scripts.take("a") is None and scripts.take("c") is not None


# -- named scenarios ---------------------------------------------------------------------

FIRST_BYTES = {
    "endless-json": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close"
                    b"\r\n\r\n" + CHAT_PREFIX + b"xxxx",
    "endless-chunked": b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(CHAT_PREFIX)
                       + CHAT_PREFIX + b"\r\n",
    "endless-error": b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n15\r\n{\"error\":{\"message\":\"\r\n",
    "huge-length": b"Content-Length: 1000000000000\r\n\r\n" + CHAT_PREFIX + b"xxxx",
    "endless-event": b"\r\ndata: {\"id\":\"chatcmpl-hostile\"",
    "endless-line": b"6\r\ndata: \r\n",
    "endless-events": b"data: {\"id\":",
    "endless-head": b"HTTP/1.1 200 OK\r\nx-hostile-filler: xxxx",
    "endless-comments": b": x\n: x\n",
}
MODELS = {"endless-error": "hostile+endless-error+status=503"}


@pytest.mark.parametrize("name", sorted(FIRST_BYTES))
def test_each_endless_scenario_starts_as_described(fake, name):
    _, transport = fake.chat(model=MODELS.get(name, f"hostile+{name}"))
    assert FIRST_BYTES[name] in transport.value()


def test_endless_event_never_sends_the_blank_line_after_its_second_event(fake):
    _, transport = fake.chat(model="hostile+endless-event+block=64+framing=close")
    body = turns(fake, transport, 5).partition(b"\r\n\r\n")[2]
    first, _, rest = body.partition(b"\n\n")
    assert json.loads(first.removeprefix(b"data: "))["object"] == "chat.completion.chunk"
    assert rest.startswith(b"data: xxx") and b"\n\n" not in rest and len(rest) > 3000


def test_endless_head_never_ends_the_head(fake):
    _, transport = fake.chat(model="hostile+endless-head+block=100")
    assert b"\r\n\r\n" not in turns(fake, transport, 5)


def test_an_endless_writer_stops_while_paused(fake):
    _, transport = fake.chat(model="hostile+endless-json+block=100")
    transport.drain()
    transport.producer.pauseProducing()
    transport.clear()
    fake.clock.advance(0)
    assert transport.value() == b""


def test_an_endless_writer_writes_again_when_resumed(fake):
    _, transport = fake.chat(model="hostile+endless-json+block=100")
    transport.producer.pauseProducing()
    transport.clear()
    transport.producer.resumeProducing()
    assert transport.value().startswith(b"x" * 100)


def test_an_endless_writer_holds_no_more_than_the_buffer_bound_and_a_block(fake):
    _, transport = fake.chat(model="hostile+endless-chunked+block=300")
    fake.clock.advance(0)
    assert len(transport.value()) <= transport.bufferSize + 300 + 200


def test_the_pauses_are_counted_in_the_log(fake):
    _, transport = fake.chat(model="hostile+endless-json+block=500")
    turns(fake, transport, 3)
    assert fake.log()[0]["paused"] == 3


def test_rate_paces_an_endless_writer(fake):
    _, transport = fake.chat(model="hostile+endless-json+block=10+rate=10")
    transport.clear()
    fake.clock.advance(0.5)
    assert transport.value() == b""
    fake.clock.advance(0.5)
    assert transport.value() == b"x" * 10


def test_drip_sends_a_well_formed_answer_one_byte_per_interval(fake):
    _, transport = fake.chat(model="hostile+drip+interval=0.5")
    assert transport.value() == b"H"
    fake.clock.advance(0.5)
    assert transport.value() == b"HT"
    for _ in range(2000):
        fake.clock.advance(0.5)
    assert json.loads(split_response(transport.value())[2])["object"] == "chat.completion"


def test_hang_never_answers(fake):
    _, transport = fake.chat(model="hostile+hang")
    fake.clock.advance(3600)
    assert transport.value() == b"" and not transport.disconnecting


@pytest.mark.parametrize("model", [
    "hostile+endless-jsn", "hostile+endless-json+colour=red", "hostile+endless-json+block=0",
    "hostile+drip+block=4", "hostile+endless-error+status=abc",
])
def test_a_typo_in_a_scenario_is_a_well_formed_400(fake, model):
    status, _, body, _ = split_response(fake.chat(model=model)[1].value())
    assert status.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == "bad_scenario"


def test_models_not_naming_a_scenario_get_the_normal_answer():
    assert parse_scenario("hostile") is None and parse_scenario("gpt+x") is None


def test_every_scenario_parses_with_its_defaults():
    assert all(parse_scenario(f"hostile+{name}") is not None for name in SCENARIOS)


# -- the log -----------------------------------------------------------------------------


def test_the_log_records_each_api_request(fake):
    fake.chat(model="m", headers={"x-request-id": "abc"})
    (entry,) = fake.log()
    assert {k: entry[k] for k in ("n", "path", "model", "x_request_id", "scenario")} == {
        "n": 1, "path": CHAT, "model": "m", "x_request_id": "abc", "scenario": "normal"}
    assert entry["bytes_sent"] > 0 and entry["closed_at"] is None


def test_a_close_by_the_peer_is_logged(fake):
    fake.clock.advance(5)
    protocol, _ = fake.chat(model="hostile+endless-json")
    lose(protocol)
    assert {k: fake.log()[0][k] for k in ("closed_at", "closed_by")} == {
        "closed_at": 5, "closed_by": "peer"}


def test_a_close_by_the_fake_is_logged(fake):
    fake.script("s", [b"x"], then="close")
    protocol, _ = fake.chat(headers={"x-request-id": "s"})
    lose(protocol)
    assert fake.log()[0]["closed_by"] == "fake"


def test_wait_answers_once_the_connection_closes(fake):
    protocol, _ = fake.chat(model="hostile+hang")
    _, waiter = fake.send("GET", "/_hostile/wait?n=1&timeout=30")
    assert waiter.value() == b""
    lose(protocol)
    assert json.loads(split_response(waiter.value())[2])["closed_by"] == "peer"


def test_wait_times_out_with_408(fake):
    fake.chat(model="hostile+hang")
    _, waiter = fake.send("GET", "/_hostile/wait?n=1&timeout=2")
    fake.clock.advance(2)
    assert waiter.value().startswith(b"HTTP/1.1 408")


def test_reset_clears_the_log_and_numbers_go_on(fake):
    fake.chat()
    fake.answer("POST", "/_hostile/reset")
    fake.chat()
    assert [e["n"] for e in fake.log()] == [2]
