"""
The fake upstream as a process (L{FakeUpstream}), talked to directly by the
official OpenAI SDK and by raw sockets: what the proxy will see behind it.
"""

import socket

import openai
import pytest

from llmedge.testing import FakeUpstream

KEY = "sk-upstream"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as running:
        yield running


@pytest.fixture
def client(upstream):
    upstream.reset()
    return openai.OpenAI(base_url=upstream.base_url + "/v1", api_key=KEY, max_retries=0)


def connect(upstream) -> socket.socket:
    host, _, port = upstream.base_url.removeprefix("http://").rpartition(":")
    return socket.create_connection((host, int(port)), timeout=10)


def post(sock: socket.socket, path: str, body: bytes) -> None:
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: fake\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    )


def read_until_closed(sock: socket.socket) -> tuple[bytes, bool]:
    """
    Everything the server sends until it closes, and whether it reset.
    """
    received = b""
    try:
        while data := sock.recv(65536):
            received += data
    except ConnectionResetError:
        return received, True
    return received, False


def test_the_listening_line_gives_the_base_url(upstream):
    assert upstream.base_url.startswith("http://127.0.0.1:")
    assert upstream.output[0] == f"fake upstream listening on tcp:{upstream.base_url[7:]}"


def test_chat_completion(client):
    completion = client.chat.completions.create(model="fake+chunks=3", messages=MESSAGES)
    assert completion.model == "fake+chunks=3"
    assert completion.choices[0].message.content == "chunk0 chunk1 chunk2"
    assert completion.usage.prompt_tokens == 7
    assert completion.usage.completion_tokens == 3


def test_streamed_chat_completion_with_usage(client):
    chunks = list(client.chat.completions.create(
        model="fake", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "chunk0 chunk1 chunk2 chunk3 chunk4"
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.total_tokens == 12


def test_embeddings_decode_in_the_sdk(client):
    # The SDK asks for base64 and decodes it itself.
    result = client.embeddings.create(model="fake-embedding", input=["a", "b"], dimensions=4)
    assert [d.embedding for d in result.data] == [[0, 0.125, 0.25, 0.375], [1, 1.125, 1.25, 1.375]]


def test_models_are_listed(client):
    assert [m.id for m in client.models.list()] == ["fake", "fake-embedding"]


@pytest.mark.parametrize("status, exception", [
    (400, openai.BadRequestError),
    (401, openai.AuthenticationError),
    (429, openai.RateLimitError),
    (503, openai.InternalServerError),
])
def test_an_error_status_maps_to_the_sdks_exception(client, status, exception):
    with pytest.raises(exception) as raised:
        client.chat.completions.create(model=f"fake+status={status}", messages=MESSAGES)
    assert raised.value.status_code == status


def test_retry_after_reaches_the_sdk(client):
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model="fake+status=429+retry-after=2", messages=MESSAGES)
    assert raised.value.response.headers["retry-after"] == "2"


def test_the_log_shows_the_authorization_header(client, upstream):
    client.chat.completions.create(
        model="fake", messages=MESSAGES, extra_headers={"x-request-id": "req-sdk"}
    )
    [entry] = upstream.log()
    assert entry["authorization"] == f"Bearer {KEY}"
    assert entry["path"] == "/v1/chat/completions"
    assert entry["x_request_id"] == "req-sdk"
    assert entry["body"]["messages"] == MESSAGES
    assert entry["finished_at"] is not None


def test_reset_after_sends_the_events_then_resets_the_connection(upstream):
    with connect(upstream) as sock:
        post(sock, "/v1/chat/completions", b'{"model":"fake+reset-after=2","stream":true}')
        received, reset = read_until_closed(sock)
    assert reset
    assert received.count(b"data: ") == 2
    assert b"[DONE]" not in received


def test_wait_for_sees_the_client_go_away(upstream):
    upstream.reset()
    with connect(upstream) as sock:
        post(sock, "/v1/chat/completions", b'{"model":"fake+slow-first=60","stream":true}')
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # the fake has the request
    [entry] = upstream.log()
    ended = upstream.wait_for(entry["n"], "disconnected_at")
    assert ended["disconnected_at"] is not None
    assert ended["finished_at"] is None


def test_wait_for_times_out(upstream):
    upstream.reset()
    with connect(upstream) as sock:
        post(sock, "/v1/chat/completions", b'{"model":"fake+slow-first=60","stream":true}')
        sock.recv(65536)
        [entry] = upstream.log()
        with pytest.raises(TimeoutError):
            upstream.wait_for(entry["n"], "finished_at", timeout=0.2)


def test_sigterm_stops_the_fake_cleanly():
    fake = FakeUpstream().start()
    assert fake.stop() == 0
    assert fake.output == [f"fake upstream listening on tcp:{fake.base_url[7:]}"]
