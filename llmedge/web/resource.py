# -*- test-case-name: tests.unit.test_resources -*-
"""
The two kinds of resource llmedge's tree is made of, both speaking only
OpenAI error JSON.

L{Node} is an inner node: its children are static, and any other name is a
404 in OpenAI's shape (Twisted's default is an HTML page). L{Endpoint} is a
leaf answering some methods: others get a 405 with C{Allow}, and an
L{APIError} raised by a handler becomes its JSON response, so handlers can
validate by raising.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from llmedge.errors import APIError, method_not_allowed, unknown_url, write_error
from llmedge.jsonwire import json_bytes


def write_json(request, document: Any, status: int = 200) -> bytes:
    """
    Set status and headers for a JSON response and return its body, for a
    synchronous C{render_*} to return.
    """
    body = json_bytes(document)
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return body


class NotFound(Resource):
    """
    The 404 answer for every method.
    """

    isLeaf = True

    def render(self, request):
        write_error(request, unknown_url(request.method, request.path))
        return NOT_DONE_YET


class Node(Resource):
    """
    An inner node whose unknown children are JSON 404s, and which is itself
    a 404 unless a subclass renders it.
    """

    def getChild(self, path: bytes, request) -> Resource:
        return NotFound()

    def render(self, request):
        return NotFound().render(request)


class Endpoint(Node):
    """
    A resource answering the methods it has C{render_<METHOD>} for.

    C{HEAD} is answered as C{GET} without the body (Twisted drops it), as
    RFC 9110 asks. An L{APIError} raised synchronously by a handler is
    written as the response.
    """

    def render(self, request):
        method = b"GET" if request.method == b"HEAD" else request.method
        handler = getattr(self, "render_" + method.decode("latin-1"), None)
        if handler is None:
            write_error(request, method_not_allowed(request.method, self.allowed()))
            return NOT_DONE_YET
        try:
            return handler(request)
        except APIError as error:
            write_error(request, error)
            return NOT_DONE_YET

    def allowed(self) -> list[bytes]:
        """
        The methods this endpoint answers, for C{Allow}.
        """
        names = [
            n[len("render_"):]
            for n in dir(self)
            if n.startswith("render_") and n != "render_HEAD"
        ]
        if "GET" in names:
            names.append("HEAD")
        return sorted(n.encode("ascii") for n in names)


class Leaf(Endpoint):
    """
    An endpoint with no children: a longer path under it is a 404.
    """

    def getChildWithDefault(self, path: bytes, request) -> Resource:
        return NotFound()
