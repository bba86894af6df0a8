# -*- test-case-name: tests.unit.test_channel -*-
"""
L{Unread}: the state both HTTP channels keep while their client does not
read its answers, counted where operators can see it.

Once a connection's unsent output passes its transport's mark, the HTTP/1.1
(L{llmedge.web.channel.EdgeChannel}) and HTTP/2 (L{llmedge.web.h2}) channels
stop reading it until the client has read. Such connections are counted in
C{llmedge_unread_connections}: many of them are clients that pipeline or
flood without reading (or a network in trouble), and the gauge is also how
a test sees, without waiting on a clock, that llmedge stopped reading.
"""

from __future__ import annotations


class Unread:
    """
    A mixin for a channel with a C{site}: C{_output_blocked} is true while
    the client does not read; setting it keeps the site's count.
    """

    _blocked = False

    @property
    def _output_blocked(self) -> bool:
        return self._blocked

    @_output_blocked.setter
    def _output_blocked(self, blocked: bool) -> None:
        if blocked == self._blocked:
            return
        self._blocked = blocked
        recorder = getattr(getattr(self, "site", None), "recorder", None)
        if recorder is not None:
            recorder.unread(1 if blocked else -1)
