# -*- test-case-name: tests.unit.test_wrappers -*-
"""
L{Wrapper}: the shape shared by the resources that guard a subtree
(authentication, rate limits, deadlines), after C{twisted.web.guard}.

A wrapper is transparent to the path: when traversal reaches it, it puts
the path segment back (C{request.postpath.insert(0, request.prepath.pop())}),
decides about the request, and either hands traversal on to the wrapped
resource, as if the wrapper were not there, or answers with an error. So
wrappers stack in any order, and each can be tested alone around any
resource.

A decision may be a Deferred (a rate-limit store across the network): then
traversal resumes when it fires, through L{twisted.web.util.DeferredResource}.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.resource import IResource, Resource, getChildForRequest
from twisted.web.server import NOT_DONE_YET
from twisted.web.util import DeferredResource
from zope.interface import implementer

from llmedge.errors import APIError, write_error


class Refusal(Resource):
    """
    A leaf answering every request with one error.
    """

    isLeaf = True

    def __init__(self, error: APIError) -> None:
        super().__init__()
        self.error = error

    def render(self, request):
        write_error(request, self.error)
        return NOT_DONE_YET


@implementer(IResource)
class Wrapper:
    """
    Decide about each request before the wrapped resource sees it.

    Subclasses implement L{check}.
    """

    isLeaf = False

    def __init__(self, wrapped: IResource) -> None:
        self.wrapped = wrapped

    def check(self, request) -> APIError | None | Deferred[APIError | None]:
        """
        Return L{None} to let the request through (having set whatever it
        needs on the request or its response headers), or the error to
        answer with; or a Deferred of either.
        """
        raise NotImplementedError

    def getChildWithDefault(self, path: bytes, request) -> IResource:
        request.postpath.insert(0, request.prepath.pop())
        return self._decide(request)

    def render(self, request):
        return self._decide(request).render(request)

    def putChild(self, path: bytes, child: IResource) -> None:
        raise NotImplementedError("put children on the wrapped resource")

    def _decide(self, request) -> IResource:
        outcome = self.check(request)
        if isinstance(outcome, Deferred):
            outcome = _result_now(outcome)
        if isinstance(outcome, Deferred):
            return DeferredResource(outcome.addCallback(self._resume, request))
        return self._resume(outcome, request)

    def _resume(self, error: APIError | None, request) -> IResource:
        if error is not None:
            return Refusal(error)
        return getChildForRequest(self.wrapped, request)


def _result_now(d: Deferred):
    """
    The result of C{d} if it has already fired (raising its failure), else
    C{d} itself: a store that answers at once (the memory one) then costs
    no L{DeferredResource} and no extra turn of the reactor.
    """
    box: list = []
    d.addBoth(lambda result: box.append(result) or result)
    if not box:
        return d
    if isinstance(box[0], Failure):
        d.addErrback(lambda _: None)
        box[0].raiseException()
    return box[0]
