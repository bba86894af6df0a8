"""
The yardstick for llmedge's CPU per request: a minimal C{twisted.web}
server answering a chat completion with the same JSON the fake upstream
answers, fixed bytes, nothing else. llmedge cannot cost less than Twisted's
HTTP server does for nothing, so issue 17 sets its goals as multiples of
this server's CPU per request, measured side by side in the same run.

Two variants, because one cost in the stock one is not HTTP's: for every
POST with a body and a Content-Type, Twisted's C{Request.requestReceived}
parses that header through the standard library's C{email} package
(C{twisted.web.http._parseContentType} builds an C{EmailMessage}) to see
whether the body is a form it should decode into C{request.args}. A JSON
API never reads C{args}; C{--fast-content-type} passes Twisted's public
C{parsePOSTFormSubmission=False} (a keyword of C{Request} and C{Site} in
the Twisted installed here), so that parse never runs. llmedge skips it
too.

Twisted's default access line is kept as stock C{Site} makes it: formatted
for each request and handed to the log system, where, as in the fake
upstream, only warnings reach stderr.

    python bench/yardstick_twisted.py --port N [--fast-content-type] [--answer FILE]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twisted.internet import reactor
from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, globalLogBeginner,
    textFileLogObserver,
)
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

#: The fake upstream's answer to C{{"model": "fake", "messages": [...]}}:
#: bench/run.py passes the fake's own bytes with C{--answer}.
ANSWER = (b'{"id":"chatcmpl-fake-1","object":"chat.completion","created":1796459205,'
          b'"model":"fake","system_fingerprint":"fp_fake","choices":[{"index":0,'
          b'"message":{"role":"assistant","content":"chunk0 chunk1 chunk2 chunk3 chunk4",'
          b'"refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":'
          b'{"prompt_tokens":7,"completion_tokens":5,"total_tokens":12}}')


class Completions(Resource):
    """
    C{POST /v1/chat/completions}: reads the body, answers fixed JSON.
    """

    isLeaf = True

    def __init__(self, answer: bytes) -> None:
        super().__init__()
        self.answer = answer

    def render_POST(self, request: Request) -> bytes:
        request.content.read()
        request.setHeader(b"Content-Type", b"application/json")
        return self.answer


class FormlessRequest(Request):
    """
    Twisted's L{Request}, told never to look for a form in a POST body, so
    it skips the per-request Content-Type parse through C{email}.
    """

    def __init__(self, channel, *args, **kwargs) -> None:
        super().__init__(channel, *args, parsePOSTFormSubmission=False, **kwargs)


def site(answer: bytes, fast: bool) -> Site:
    """
    The whole server: C{/v1/chat/completions} under a plain resource tree.
    """
    root, v1, chat = Resource(), Resource(), Resource()
    root.putChild(b"v1", v1)
    v1.putChild(b"chat", chat)
    chat.putChild(b"completions", Completions(answer))
    return Site(root, requestFactory=FormlessRequest if fast else Request)


def main(argv: list[str] | None = None) -> None:
    """
    Serve on 127.0.0.1 until SIGTERM; say so on stdout once listening.
    """
    parser = argparse.ArgumentParser(prog="bench/yardstick_twisted.py",
                                     description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any)")
    parser.add_argument("--fast-content-type", action="store_true",
                        help="skip Twisted's per-request Content-Type (form) parse")
    parser.add_argument("--answer", type=Path, help="a file whose bytes are the answer")
    options = parser.parse_args(argv)
    answer = options.answer.read_bytes() if options.answer else ANSWER
    warnings = FilteringLogObserver(textFileLogObserver(sys.stderr),
                                    [LogLevelFilterPredicate(LogLevel.warn)])
    globalLogBeginner.beginLoggingTo([warnings], redirectStandardIO=False)
    port = reactor.listenTCP(options.port, site(answer, options.fast_content_type),
                             interface="127.0.0.1")
    print(f"yardstick listening on tcp:127.0.0.1:{port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
