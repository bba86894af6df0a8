# -*- test-case-name: tests.unit.test_mock_provider -*-
"""
The mock provider's embeddings answer, written straight in its wire form.

The mock answers on the reactor thread, and real clients send large
batches (LangChain 1000 texts, the API allows 2048 of up to 3072
dimensions): computing, normalising and writing millions of numbers one by
one in Python would hold the reactor for seconds. So every component of a
vector is one of two numbers, +c or -c with c the float32 nearest
1/sqrt(d), the sign of component i being bit i (most significant first) of
a SHAKE-256 digest of the text. Such a vector has unit length by
construction (to float32 precision), depends on the text alone, and is
nearly orthogonal to another text's (their cosine is a sum of d random
signs over d: 0 give or take 1/sqrt(d)).

With two numbers, a vector is assembled from tables made once per number of
dimensions rather than number by number:

  - as JSON, from the text of the 8 components each digest byte stands for
    (256 entries);
  - as base64, from a repeated 16-character template: 3 float32 are 12
    bytes, 16 base64 characters, and each component's sign bit (the top bit
    of its last byte) falls in one character of them, whose two forms a
    translation table gives.

Both forms carry exactly the same float32 values, and the JSON numbers are
the shortest text of those values as doubles, as C{json.dumps} writes them:
the answer is byte for byte what serialising its document would give. It is
written into one buffer and handed over as bytes, never as a document: the
float answer to 2048 inputs of 1536 dimensions is 67 MB, and making fresh
memory is then most of the cost (about 0.6 ms a MB here), so no step makes
a second copy of it.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import itertools
import math
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from llmedge.jsonwire import json_bytes

#: Tables kept for this many recent numbers of dimensions (about 100 KB
#: each); making one takes under a millisecond.
_CACHED_DIMENSIONS = 32


def _component(dimensions: int) -> float:
    """
    The float32 nearest 1/sqrt(C{dimensions}), as a double.
    """
    return struct.unpack("<f", struct.pack("<f", 1 / math.sqrt(dimensions)))[0]


def digest(text: str, dimensions: int) -> bytes:
    """
    The signs of the vector of C{text}: bit i (most significant first) set
    makes component i negative.
    """
    return hashlib.shake_256(text.encode("utf-8")).digest(-(-dimensions // 8))


@functools.lru_cache(maxsize=_CACHED_DIMENSIONS)
def _number_tables(dimensions: int) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
    """
    For each byte value: the JSON text of the 8 components it stands for,
    each followed by a comma; and the text of the components of the last
    byte of a digest (as many as are left, 1 to 8), without one.
    """
    c = _component(dimensions)
    signs = (repr(c).encode("ascii"), repr(-c).encode("ascii"))
    last = dimensions - 8 * (-(-dimensions // 8) - 1)

    def text(byte: int, count: int) -> bytes:
        return b",".join(signs[byte >> (7 - i) & 1] for i in range(count))

    return (
        tuple(text(b, 8) + b"," for b in range(256)),
        tuple(text(b, last) for b in range(256)),
    )


@functools.lru_cache(maxsize=_CACHED_DIMENSIONS)
def _base64_tables(dimensions: int) -> tuple[bytes, tuple, dict[bytes, bytes]]:
    """
    The base64 of three positive components; for each of the three, the
    index of the one character its sign changes and the translation of a
    sign bit (C{b"0"} or C{b"1"}) to that character; and the base64 of the
    last one or two components (C{dimensions} not a multiple of 3), by
    their sign bits.
    """
    c = _component(dimensions)
    packed = (struct.pack("<f", c), struct.pack("<f", -c))
    template = base64.b64encode(packed[0] * 3)
    flips = []
    for k in range(3):
        flipped = base64.b64encode(b"".join(packed[i == k] for i in range(3)))
        (at,) = (i for i in range(16) if flipped[i] != template[i])
        flips.append((k, at, bytes.maketrans(b"01", bytes((template[at], flipped[at])))))
    tail = {
        bytes(bits): base64.b64encode(b"".join(packed[b == 0x31] for b in bits))
        for bits in itertools.product(b"01", repeat=dimensions % 3)
    }
    return template, tuple(flips), tail


def _numbers(out: BinaryIO, dimensions: int) -> Callable[[bytes], None]:
    """
    A function writing to C{out} the JSON array of the vector of a digest.
    """
    every, last = _number_tables(dimensions)

    def write(signs: bytes) -> None:
        out.write(b"[")
        out.writelines(map(every.__getitem__, signs[:-1]))
        out.write(last[signs[-1]])
        out.write(b"]")

    return write


def _base64(out: BinaryIO, dimensions: int) -> Callable[[bytes], None]:
    """
    A function writing to C{out} the JSON string of the base64 of the vector
    of a digest, as little-endian float32 (what the official SDKs decode).

    The characters of one vector are made in place in one buffer, reused
    from vector to vector (each rewrites every character a sign changes):
    fresh memory is the dearest part of a large answer, and the answer's
    own is enough.
    """
    template, flips, tail = _base64_tables(dimensions)
    whole = dimensions - dimensions % 3
    vector = bytearray(template) * (whole // 3)

    def write(signs: bytes) -> None:
        bits = format(int.from_bytes(signs, "big"), f"0{8 * len(signs)}b").encode("ascii")
        for k, at, translation in flips:
            vector[at::16] = bits[k:whole:3].translate(translation)
        out.write(b'"')
        out.write(vector)
        out.write(tail[bits[whole:dimensions]])
        out.write(b'"')

    return write


def embeddings_body(
    texts: list[str], dimensions: int, as_base64: bool, model: str, usage: dict[str, Any]
) -> bytes:
    """
    The whole embeddings answer, one vector per text, as L{json_bytes}
    would write its document; written into one growing buffer, which
    becomes the answer without a copy.
    """
    out = io.BytesIO()
    vector = (_base64 if as_base64 else _numbers)(out, dimensions)
    out.write(b'{"object":"list","data":[')
    for index, text in enumerate(texts):
        out.write(b'%s{"object":"embedding","index":%d,"embedding":'
                  % (b"," if index else b"", index))
        vector(digest(text, dimensions))
        out.write(b"}")
    out.write(b'],"model":%s,"usage":%s}' % (json_bytes(model), json_bytes(usage)))
    return out.getvalue()
