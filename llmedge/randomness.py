# -*- test-case-name: tests.unit.test_randomness -*-
"""
Random bytes for ids (request ids, trace and span ids, completion ids),
read from the kernel in blocks.

Every request needs three or four ids; C{os.urandom} for each is a
C{getrandom} system call each time, and system calls are what a request
on a virtual machine pays most for. Reading 4 KiB at once and handing out
slices gives the same bytes (the kernel's CSPRNG) with one call per
hundred-odd requests. A forked child starts with an empty block, so parent
and child never hand out the same bytes.
"""

from __future__ import annotations

import os

BLOCK = 4096

_block = b""
_used = 0


def random_bytes(n: int) -> bytes:
    """
    C{n} bytes from the kernel's random source (C{n} at most L{BLOCK}).
    """
    global _block, _used
    end = _used + n
    if end > len(_block):
        _block, _used, end = os.urandom(max(BLOCK, n)), 0, n
    chunk = _block[_used:end]
    _used = end
    return chunk


def random_hex(n: int) -> str:
    """
    C{n} random bytes as 2n lowercase hex digits.
    """
    return random_bytes(n).hex()


def _forget() -> None:
    global _block, _used
    _block, _used = b"", 0


os.register_at_fork(after_in_child=_forget)
