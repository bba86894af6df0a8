# -*- test-case-name: tests.unit.test_shared_store -*-
"""
A fixed-size table in a memory-mapped file, shared by the worker
processes of one supervisor and changed under a C{lockf} lock.

The supervisor makes the file (L{create}) before any worker starts; each
worker maps it (L{MappedTable}) and changes it only inside L{locked}, so a
read-compare-write is atomic across processes. Two tables use it: the
rate-limit state (L{llmedge.limits.shared}) and the requests in flight
(L{llmedge.limits.inflight}).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager


def create(path: str, size: int) -> None:
    """
    Make an empty table of C{size} bytes at C{path}, readable and writable
    by this user only.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.ftruncate(fd, size)
    finally:
        os.close(fd)


def stable_hash(name: str) -> int:
    """
    A 64-bit hash of C{name}, the same in every process (Python's own
    C{hash()} is not), never 0 (which marks an empty row).
    """
    value = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
    return value or 1


class MappedTable:
    """
    The table at C{path}, which must be C{size} bytes long (made by
    L{create}); C{what} names it in the error otherwise.
    """

    def __init__(self, path: str, size: int, what: str) -> None:
        self._fd = os.open(path, os.O_RDWR)
        if os.fstat(self._fd).st_size != size:
            os.close(self._fd)
            raise ValueError(f"{path} is not {what} of {size} bytes")
        self._map = mmap.mmap(self._fd, size)

    @contextmanager
    def locked(self) -> Iterator[mmap.mmap]:
        """
        The mapped bytes, held under the file's lock (between processes).
        """
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            yield self._map
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self._map.close()
        os.close(self._fd)
