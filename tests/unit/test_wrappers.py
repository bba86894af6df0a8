"""
L{Wrapper}: transparent to the path, and able to decide now or later.
"""

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.test.requesthelper import DummyRequest

from llmedge.errors import invalid_request
from llmedge.web.wrapper import Refusal, Wrapper


class Echo(Resource):
    isLeaf = True

    def render_GET(self, request):
        return b"/".join(request.prepath) + b"|" + b"/".join(request.postpath)


class Allow(Wrapper):
    def __init__(self, wrapped, outcome):
        super().__init__(wrapped)
        self.outcome = outcome
        self.seen = []

    def check(self, request):
        self.seen.append(list(request.postpath))
        return self.outcome


def tree(outcome):
    inner = Resource()
    inner.putChild(b"leaf", Echo())
    wrapper = Allow(inner, outcome)
    root = Resource()
    root.putChild(b"api", wrapper)
    return Site(root), wrapper


def resolve(site, path):
    request = DummyRequest(path.split(b"/"))
    return site.getResourceFor(request), request


def test_traversal_passes_through_the_wrapper_unchanged():
    site, wrapper = tree(None)
    resource, request = resolve(site, b"api/leaf/x")
    assert isinstance(resource, Echo)
    assert request.prepath == [b"api", b"leaf"]
    assert request.postpath == [b"x"]


def test_wrapper_sees_the_path_below_it():
    site, wrapper = tree(None)
    resolve(site, b"api/leaf/x")
    assert wrapper.seen == [[b"leaf", b"x"]]


def test_refusal_replaces_the_rest_of_the_tree():
    error = invalid_request("no")
    site, _ = tree(error)
    resource, _ = resolve(site, b"api/leaf")
    assert isinstance(resource, Refusal)
    assert resource.error is error


def test_decision_already_made_costs_no_deferred_resource():
    site, _ = tree(succeed(None))
    resource, _ = resolve(site, b"api/leaf")
    assert isinstance(resource, Echo)


def test_decision_made_later_resumes_traversal_when_it_arrives():
    pending = Deferred()
    site, _ = tree(pending)
    resource, request = resolve(site, b"api/leaf")
    request.method = b"GET"
    request.render(resource)
    assert request.written == []
    pending.callback(None)
    assert b"".join(request.written) == b"api/leaf|"


def test_putting_children_on_a_wrapper_is_refused():
    _, wrapper = tree(None)
    with pytest.raises(NotImplementedError):
        wrapper.putChild(b"x", Echo())
