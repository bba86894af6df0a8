"""
Hypothesis strategies for what a hostile or merely odd upstream may send
back to one request, as raw bytes, for property-based tests of llmedge
behind L{llmedge.testing.HostileUpstream} (script the bytes for a request
id, send the request through llmedge, assert on what the client gets).

L{answers} draws the bytes; L{described_answers} draws them with what was
chosen (status, framing, body, whether the whole is sound HTTP), so a
property can say "a sound 200 with a chat completion is served" as well as
"nothing is ever a 500 or a stall". Each answer stays under 64 KiB.

The parts are strategies of their own: L{status_heads} (the final status
line, maybe after 1xx heads), L{header_lists}, L{json_bodies},
L{sse_bodies} and L{framings} (which puts a body in a framing, right or
wrong).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

from llmedge.testing.hostile_wire import chat_chunk, chat_completion, dumps, error, openai_usage

MAX_ANSWER = 64 * 1024
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Answer:
    """
    One drawn answer.

    @ivar raw: the bytes to send.
    @ivar status: the final status code, or L{None} when the status line
        is not HTTP/1.x's.
    @ivar framing: the framing's name (C{"length"}, C{"length-short"},
        C{"chunked"}, C{"chunked-bad-size"}, C{"close"}, ...).
    @ivar body: the body's kind (C{"chat"}, C{"error"}, C{"html"},
        C{"sse"}, ...).
    @ivar sound: the status line, headers and framing are all valid
        HTTP/1.1 (the body may still be anything): a client must be able
        to read this answer to its end.
    """

    raw: bytes
    status: int | None
    framing: str
    body: str
    sound: bool


# -- status lines ------------------------------------------------------------------------

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 413: "Payload Too Large",
            422: "Unprocessable Entity", 429: "Too Many Requests",
            500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
            504: "Gateway Timeout", 529: "Site Overloaded"}
#: Status lines that are not HTTP/1.x: the answer cannot be read as such.
GARBAGE_LINES = (b"HTTP/2.0 200 OK", b"HTTP/1.1 abc OK", b"200 OK", b"HTTTP/1.1 200 OK",
                 b"HTTP/1.1 99999999999999999999 Big", b"\x00\x01\x02garbage", b"",
                 b"http/1.1 200 ok", b"HTTP/1.1 2000 OK", b"<html>oops</html>")
INFORMATIONAL = (b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\n"
                 b"Link: </a.css>; rel=preload\r\n\r\n", b"HTTP/1.1 102 Processing\r\n\r\n")


@st.composite
def status_heads(draw) -> tuple[bytes, bytes, int | None, bool]:
    """
    C{(before, line, status, sound)}: 1xx heads sent before the final
    status line (or nothing), the line itself, its code (L{None} for
    garbage) and whether it is valid HTTP/1.x.
    """
    kind = draw(st.sampled_from(["ok", "ok", "ok", "error", "informational", "http10",
                                 "garbage", "no-reason"]))
    if kind == "garbage":
        return b"", draw(st.sampled_from(GARBAGE_LINES)), None, False
    status = 200 if kind != "error" else draw(st.sampled_from(sorted(set(_REASONS) - {200})))
    before = b""
    if kind == "informational":
        before = b"".join(draw(st.lists(st.sampled_from(INFORMATIONAL), min_size=1, max_size=2)))
    version = b"HTTP/1.0" if kind == "http10" else b"HTTP/1.1"
    reason = b"" if kind == "no-reason" else b" " + _REASONS[status].encode()
    return before, version + b" %d" % status + reason, status, True


# -- headers -----------------------------------------------------------------------------

CONTENT_TYPES = {
    "json": [b"application/json"], "json-charset": [b"application/json; charset=utf-8"],
    "event-stream": [b"text/event-stream"], "event-stream-charset":
    [b"text/event-stream; charset=utf-8"], "html": [b"text/html"], "plain": [b"text/plain"],
    "missing": [], "two": [b"application/json", b"text/event-stream"],
}
RETRY_AFTERS = (b"7", b"0", b"1.5", b"soon", b"-3", b"99999999999999999999",
                b"Wed, 21 Oct 2015 07:28:00 GMT", b"")

#: (name, the header lines, whether they are valid HTTP/1.1 headers).
ODD_HEADERS = st.sampled_from([
    ("duplicate", [b"x-request-id: a", b"x-request-id: b"], True),
    ("control", [b"x-odd: a\x01b"], False),
    ("nul", [b"x-odd: a\x00b"], False),
    ("del", [b"x-odd: \x7f"], False),
    ("large", [b"x-large: " + b"v" * 20_000], True),
    ("obs-fold", [b"x-folded: first", b"\tcontinued"], False),
    ("name-space", [b"bad name: x"], False),
    ("name-space-before-colon", [b"x-trail : x"], False),
    ("no-colon", [b"NoColonHere"], False),
    ("empty-value", [b"x-empty:"], True),
    ("latin-1", [b"x-latin: caf\xe9"], True),
    ("server", [b"server: hostile/1.0", b"date: Thu, 01 Jan 2026 00:00:00 GMT"], True),
])


@st.composite
def header_lists(draw, status: int | None = 200, stream: bool = False,
                 ) -> tuple[list[bytes], str, bool]:
    """
    C{(lines, content_type_kind, sound)}: header lines (no framing
    header: L{framings} adds those), with a C{Content-Type} likely to
    match C{stream}, a C{Retry-After} of any sort on a 429, and up to two
    odd headers.
    """
    likely = "event-stream" if stream else "json"
    kind = draw(st.sampled_from([likely, likely, likely, *CONTENT_TYPES]))
    lines = [b"content-type: " + value for value in CONTENT_TYPES[kind]]
    if status in (429, 503) and draw(st.booleans()):
        lines.append(b"retry-after: " + draw(st.sampled_from(RETRY_AFTERS)))
    sound = kind != "two"
    for _, odd, valid in draw(st.lists(ODD_HEADERS, max_size=2, unique_by=lambda h: h[0])):
        lines += odd
        sound = sound and valid
    return lines, kind, sound


# -- bodies ------------------------------------------------------------------------------

_DEPTH = 2000


@st.composite
def json_bodies(draw, status: int | None = 200) -> tuple[bytes, str]:
    """
    C{(body, kind)}: what a non-streamed answer carries; mostly what the
    status suggests (a chat completion, an error), sometimes anything.
    """
    likely = "chat" if status == 200 else "error"
    kind = draw(st.sampled_from([likely, likely, "chat", "error", "html", "truncated", "empty",
                                 "non-utf8", "deep", "not-object", "no-choices", "unicode"]))
    chat = dumps(chat_completion(model="gpt"))
    body = {
        "chat": chat,
        "error": dumps(error("upstream says no", "server_error")),
        "html": b"<html><body><h1>502 Bad Gateway</h1></body></html>",
        "truncated": chat[:draw(st.integers(1, len(chat) - 1))],
        "empty": b"",
        "non-utf8": b'{"id": "\xff\xfe\x80"}',
        "deep": b"[" * _DEPTH + b"]" * _DEPTH,
        "not-object": draw(st.sampled_from([b"[]", b"null", b"42", b'"chat"'])),
        "no-choices": dumps({"id": "x", "object": "chat.completion", "choices": []}),
        "unicode": dumps(chat_completion("\u00e9\u4e2d\U0001f600\u2028", model="gpt")),
    }[kind]
    return body, kind


def _field(name: bytes, value: bytes, space: bool, eol: bytes) -> bytes:
    return name + (b": " if space else b":") + value + eol


@st.composite
def sse_bodies(draw) -> tuple[bytes, str]:
    """
    C{(body, kind)}: an event stream of chat chunks in one of the shapes
    servers send: LF, CRLF or bare CR line ends, C{data:} with or without
    the space, multi-line data, comments, C{event:}/C{id:}/C{retry:},
    a leading BOM, blank events; usage as OpenAI (a last C{choices: []}
    chunk), LiteLLM (C{choices: [{"index": 0, "delta": {}}]}), vLLM (on
    every chunk) or C{"usage": null} on every chunk; an error event in the
    middle; C{[DONE]} or not.
    """
    eol = draw(st.sampled_from([b"\n", b"\r\n", b"\r"]))
    space = draw(st.booleans())
    usage = draw(st.sampled_from(["none", "openai", "litellm", "vllm", "null"]))
    pieces = draw(st.lists(st.sampled_from(["Hel", "lo", " wor", "ld", "", "\u00e9"]), max_size=4))
    deltas = [{"role": "assistant", "content": ""}] + [{"content": p} for p in pieces] + [{}]
    documents = []
    for i, delta in enumerate(deltas):
        extra = ({"usage": openai_usage(i)} if usage == "vllm"
                 else {"usage": None} if usage == "null" else {})
        documents.append(chat_chunk(delta, "gpt", "stop" if i == len(deltas) - 1 else None,
                                    **extra))
    if usage in ("openai", "litellm"):
        choices = [] if usage == "openai" else [{"index": 0, "delta": {}}]
        documents.append(chat_chunk(model="gpt", choices=choices, usage=openai_usage(len(pieces))))
    events = [[(b"data", line) for line in
               (json.dumps(d, indent=1).encode().split(b"\n") if draw(st.booleans())
                else [dumps(d)])] for d in documents]
    if draw(st.booleans()):  # an error in the middle of the stream
        at = draw(st.integers(1, len(events)))
        error_event = [(b"data", dumps(error("overloaded mid-stream", "server_error")))]
        if draw(st.booleans()):
            error_event.insert(0, (b"event", b"error"))
        events.insert(at, error_event)
    for _ in range(draw(st.integers(0, 3))):  # decorations at random places
        at = draw(st.integers(0, len(events)))
        events.insert(at, draw(st.sampled_from([
            [(b"", b"keep-alive")], [(b"", b"")], [], [(b"data", b"")],
            [(b"event", b"ping"), (b"data", b"{}")], [(b"id", b"7")], [(b"retry", b"1000")],
        ])))
    done = draw(st.booleans())
    if done:
        events.append([(b"data", b"[DONE]")])
    body = BOM if draw(st.integers(0, 9)) == 0 else b""
    for event in events:
        body += b"".join(_field(name, value, space, eol) for name, value in event) + eol
    return body, f"sse-{usage}" + ("" if done else "-no-done")


# -- framing -----------------------------------------------------------------------------

FRAMINGS = ("length", "length-short", "length-long", "length-duplicate", "length-conflict",
            "length-garbage", "chunked", "chunked-bad-size", "chunked-no-crlf",
            "chunked-no-last", "close", "te-unknown", "te-and-length")
SOUND_FRAMINGS = ("length", "chunked", "close")


@st.composite
def framings(draw, body: bytes) -> tuple[list[bytes], bytes, str]:
    """
    C{(header_lines, framed_body, name)}: C{body} framed right (by length,
    chunked with extensions and trailers or not, or by the close) or wrong
    in one of the ways servers get it wrong.
    """
    name = draw(st.sampled_from(FRAMINGS + tuple(SOUND_FRAMINGS) * 3))  # half of them right
    size = len(body)
    if name.startswith("length"):
        wrong = draw(st.integers(1, 1000))
        value = {
            "length": b"%d" % size, "length-short": b"%d" % max(0, size - wrong),
            "length-long": b"%d" % (size + wrong), "length-duplicate": b"%d" % size,
            "length-conflict": b"%d" % size,
            "length-garbage": draw(st.sampled_from([b"abc", b"-1", b"1e3", b"0x10", b"+5",
                                                    b"", b"99999999999999999999999"])),
        }[name]
        lines = [b"content-length: " + value]
        if name == "length-duplicate":
            lines.append(lines[0])
        elif name == "length-conflict":
            lines.append(b"content-length: %d" % (size + wrong))
        return lines, body, name
    if name.startswith("chunked"):
        cuts = sorted(draw(st.lists(st.integers(0, size), max_size=4)))
        parts = [body[a:b] for a, b in zip([0, *cuts], [*cuts, size]) if b > a]
        extension = draw(st.sampled_from([b"", b"", b";name=value", b';q="x y"']))
        framed = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in parts)
        if name == "chunked-bad-size":
            framed = draw(st.sampled_from([b"zz\r\n", b"-1\r\n", b"fffffffffffffffffffff\r\n",
                                           b"%x\r\n" % (size + 5)])) + body + b"\r\n"
        elif name == "chunked-no-crlf":
            framed = b"%x\r\n" % size + body
        last = b"" if name == "chunked-no-last" else b"0\r\n" + draw(st.sampled_from(
            [b"", b"x-trailer: t\r\n"])) + b"\r\n"
        return [b"transfer-encoding: chunked"], framed + last, name
    if name == "close":
        return draw(st.sampled_from([[], [b"connection: close"]])), body, name
    if name == "te-unknown":
        coding = draw(st.sampled_from([b"gzip", b"identity", b"x-custom", b"chunked, gzip"]))
        return [b"transfer-encoding: " + coding], body, name
    return [b"transfer-encoding: chunked", b"content-length: %d" % size], body, name


# -- whole answers -----------------------------------------------------------------------


@st.composite
def described_answers(draw, stream: bool = False) -> Answer:
    """
    An L{Answer} to a request that did (C{stream=True}) or did not ask for
    a stream: a stream gets an event stream when its status is 200, mostly.
    """
    before, line, status, line_sound = draw(status_heads())
    headers, _, headers_sound = draw(header_lists(status, stream))
    if stream and status == 200 and draw(st.integers(0, 4)):
        body, body_kind = draw(sse_bodies())
    else:
        body, body_kind = draw(json_bodies(status))
    framing_lines, framed, framing = draw(framings(body))
    raw = before + b"\r\n".join([line, *headers, *framing_lines]) + b"\r\n\r\n" + framed
    assert len(raw) < MAX_ANSWER, len(raw)
    # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing.
    chunked_10 = line.startswith(b"HTTP/1.0") and any(
        h.startswith(b"transfer-encoding") for h in framing_lines)
    sound = line_sound and headers_sound and framing in SOUND_FRAMINGS and not chunked_10
    return Answer(raw, status, framing, body_kind, sound)


def answers(stream: bool = False) -> st.SearchStrategy[bytes]:
    """
    The raw bytes of an answer to a request that did or did not ask for
    a stream (L{described_answers} without the description).
    """
    return described_answers(stream).map(lambda answer: answer.raw)
