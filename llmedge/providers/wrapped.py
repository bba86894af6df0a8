# -*- test-case-name: tests.unit.test_attempts,tests.unit.test_sse_batches -*-
"""
L{WrappedStream}: an L{IEventStream} that is another one with something
added on the way (counted in flight by routing, read by the response
cache), and otherwise the same stream.

What a stream delivers (a dialect's bytes, or reply events for the front
to encode) is declared by the interfaces it provides, so a wrapper takes
them on: a wrapper that hid L{llmedge.dialects.reply.IReplyStream} would
have its events written as if they were bytes. So it is with
L{llmedge.providers.base.IBatchedStream}: a wrapper of a stream that says
where its batches end passes that on (the C{flush} of L{start}), or its
client would be written nothing of a batch until the stream ended.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import alsoProvides, implementer, providedBy

from llmedge.providers.base import IEventStream


@implementer(IEventStream)
class WrappedStream:
    """
    C{stream}, passed through; subclasses add to L{start} and
    L{stopProducing}.
    """

    def __init__(self, stream) -> None:
        self._stream = stream
        alsoProvides(self, *providedBy(stream))

    @property
    def usage(self):
        return self._stream.usage

    @property
    def headers(self):
        return self._stream.headers

    def start(
        self, receiver: Callable[[Any], None], flush: Callable[[], None] | None = None
    ) -> Deferred[None]:
        """
        Start the wrapped stream, with C{flush} when the front gave one
        (it does only to a stream that provides
        L{llmedge.providers.base.IBatchedStream}).
        """
        if flush is None:
            return self._stream.start(receiver)
        return self._stream.start(receiver, flush)

    def pauseProducing(self) -> None:
        self._stream.pauseProducing()

    def resumeProducing(self) -> None:
        self._stream.resumeProducing()

    def stopProducing(self) -> None:
        self._stream.stopProducing()
