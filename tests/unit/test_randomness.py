# -*- test-case-name: tests.unit.test_randomness -*-
"""
Tests for L{llmedge.randomness}.
"""

import os

from llmedge import randomness


def test_sizes_and_hex():
    assert len(randomness.random_bytes(16)) == 16
    text = randomness.random_hex(8)
    assert len(text) == 16 and int(text, 16) >= 0


def test_slices_never_repeat_across_blocks():
    seen = {randomness.random_bytes(16) for _ in range(3 * randomness.BLOCK // 16)}
    # 768 draws of 128 bits: any repeat means a slice was handed out twice
    assert len(seen) == 3 * randomness.BLOCK // 16


def test_larger_than_a_block():
    assert len(randomness.random_bytes(randomness.BLOCK + 1)) == randomness.BLOCK + 1


def test_one_system_call_per_block(monkeypatch):
    calls = []
    real = os.urandom

    def counting(n):
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", counting)
    randomness._forget()
    for _ in range(randomness.BLOCK // 16):
        randomness.random_bytes(16)
    assert calls == [randomness.BLOCK]


def test_forked_child_draws_fresh_bytes():
    randomness.random_bytes(1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send what it draws next
        os.write(write, randomness.random_bytes(16))
        os._exit(0)
    os.close(write)
    child = os.read(read, 16)
    os.waitpid(pid, 0)
    os.close(read)
    assert child != randomness.random_bytes(16)
