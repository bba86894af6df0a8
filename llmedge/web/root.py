# -*- test-case-name: tests.unit.test_resources -*-
"""
The root of llmedge's resource tree, as DESIGN.md draws it::

    /health, /health/live, /health/ready     public
    /v1/...                                  the OpenAI API

Wrappers for authentication, rate limits and deadlines go around C{v1} here,
and nowhere else, so the tree shows what protects what.
"""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime

from llmedge.providers.router import Router
from llmedge.web.health import Health
from llmedge.web.resource import Node
from llmedge.web.v1 import build_v1


def build_root(router: Router, clock: IReactorTime) -> Node:
    """
    The whole tree for one site.
    """
    root = Node()
    root.putChild(b"health", Health(clock))
    root.putChild(b"v1", build_v1(router))
    return root
