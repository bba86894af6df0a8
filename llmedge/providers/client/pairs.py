# -*- test-case-name: tests.unit.test_client -*-
"""
A response's headers as llmedge keeps them: the C{(name, value)} pairs of
the head, in the order they came, names lower-cased once by the parser.

Not a L{twisted.web.http_headers.Headers}: that type checks and cleans
every name and value again as it stores them (the parser has checked them
already), keeps a dict of lists, and its internals differ between the
Twisted versions llmedge supports. llmedge asks three things of an
upstream's headers, each once or twice per request: the first value of a
name (C{Content-Type}, C{Retry-After}), every value of one, and the pairs
in order, to pick the few that are relayed. A list of pairs does all three
with nothing built per header but the pair itself; a linear scan over the
dozen headers of a real answer is cheaper than hashing into a dict, and
the head's size bound (L{llmedge.providers.client.MAX_HEAD}) bounds the
scan.

Values are what the upstream sent, without surrounding blanks, never
rewritten: whatever passes them on checks them first
(L{llmedge.providers.headers.clean_value}).
"""

from __future__ import annotations

from collections.abc import Iterator


class HeaderPairs:
    """
    The headers of one response, as C{(lower-case name, value)} pairs of
    L{bytes}, in wire order; a name may repeat.

    @param pairs: the pairs, their names lower-case already; kept, not
        copied.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: list[tuple[bytes, bytes]] | None = None) -> None:
        self._pairs = [] if pairs is None else pairs

    def get(self, name: bytes, default: bytes | None = None) -> bytes | None:
        """
        The first value of C{name} (any case), or C{default}.
        """
        name = name.lower()
        for key, value in self._pairs:
            if key == name:
                return value
        return default

    def get_all(self, name: bytes) -> list[bytes]:
        """
        Every value of C{name} (any case), in order; empty when it is not
        there.
        """
        name = name.lower()
        return [value for key, value in self._pairs if key == name]

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(self._pairs)

    def __repr__(self) -> str:
        return f"HeaderPairs({self._pairs!r})"
