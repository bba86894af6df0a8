# -*- test-case-name: tests.unit.test_hostile_upstream -*-
"""
How the hostile fake upstream writes what it was asked to send (a
L{Script}'s pieces, an L{Endless} answer) without growing.

The endless writer is an L{IPushProducer}: it writes a block per reactor
turn only while its transport is not paused, so however long it runs the
fake holds at most a block or two beyond the transport's own buffer.
L{Flushed} tells when what was written has left that buffer.
"""

from __future__ import annotations

from collections.abc import Callable

from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer, IPushProducer

from llmedge.testing.hostile_scenarios import Endless


@implementer(IPushProducer)
class EndlessWriter:
    """
    Writes L{Endless.start}, then one L{Endless.block} per reactor turn
    (or per C{len(block) / rate} seconds) while not paused, until stopped.

    Register it on the transport as a streaming producer before L{start}:
    the transport pauses it when its buffer passes its bound and resumes
    it once drained, and a block is written at once on resuming.

    @param write: writes bytes to the transport (and counts them).
    @param paused: called on each pause, to count them.
    """

    def __init__(self, clock, endless: Endless, write: Callable[[bytes], None],
                 paused: Callable[[], None]) -> None:
        self._clock = clock
        self._endless = endless
        self._write = write
        self._on_pause = paused
        self._paused = False
        self._stopped = False
        self._call = None
        self._next_at = 0.0

    def start(self) -> None:
        self._write(self._endless.start)
        self._tick()

    def _tick(self) -> None:
        self._call = None
        if self._paused or self._stopped:
            return
        self._write(self._endless.block)
        rate = self._endless.rate
        delay = len(self._endless.block) / rate if rate else 0.0
        self._next_at = self._clock.seconds() + delay
        if not (self._paused or self._stopped):
            self._call = self._clock.callLater(delay, self._tick)

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def pauseProducing(self) -> None:
        if not self._paused:
            self._paused = True
            self._on_pause()
        self._cancel()

    def resumeProducing(self) -> None:
        if self._stopped or not self._paused:
            return
        self._paused = False
        delay = self._next_at - self._clock.seconds()
        if delay > 0:
            self._call = self._clock.callLater(delay, self._tick)
        else:
            self._tick()

    def stopProducing(self) -> None:
        self._stopped = True
        self._cancel()


class PiecesWriter:
    """
    Writes C{pieces} in order, C{interval} seconds apart (all in one write
    when it is 0), then calls C{done}.
    """

    def __init__(self, clock, pieces: tuple[bytes, ...], interval: float,
                 write: Callable[[bytes], None], done: Callable[[], None]) -> None:
        self._clock = clock
        self._pieces = pieces
        self._interval = interval
        self._write = write
        self._done = done
        self._next = 0
        self._call = None

    def start(self) -> None:
        if self._interval == 0:
            self._write(b"".join(self._pieces))
            self._done()
            return
        self._step()

    def _step(self) -> None:
        self._call = None
        if self._next < len(self._pieces):
            self._write(self._pieces[self._next])
            self._next += 1
        if self._next < len(self._pieces):
            self._call = self._clock.callLater(self._interval, self._step)
        else:
            self._done()

    def stop(self) -> None:
        """
        Write nothing more (the connection is gone).
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None


@implementer(IPullProducer)
class Flushed:
    """
    Knows when everything written has left the transport's buffer: a
    transport asks its pull producer for more each time the buffer
    empties. An abort waits for that, as C{abortConnection} drops
    whatever is still buffered.

    Register it as a pull producer (C{streaming=False}) and call L{wrote}
    after each write; unregister it before C{loseConnection}, which a
    registered producer holds back.
    """

    def __init__(self) -> None:
        self.flushed = True
        self._waiting: list = []

    def wrote(self) -> None:
        self.flushed = False

    def then(self, action) -> None:
        if self.flushed:
            action()
        else:
            self._waiting.append(action)

    def resumeProducing(self) -> None:
        self.flushed = True
        waiting, self._waiting = self._waiting, []
        for action in waiting:
            action()

    def stopProducing(self) -> None:
        self._waiting = []
