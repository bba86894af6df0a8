# -*- test-case-name: tests.unit.test_cache_key -*-
"""
The cache key: one digest per distinct question.

Two requests share a cache entry exactly when they ask the same thing of
the same model in the same scope. So the key is a SHA-256 digest of a
canonical form of three parts: the scope (whose cache: an API key's id, or
C{"global"}), the route (which API: C{"chat.completions"}, ...), and the
request body minus the fields that cannot change the answer. Stores only
ever see the digest, never the body, so a prompt does not sit in Redis
under its own text and keys have a fixed, small size.

Canonical form of the body: C{json.dumps} with sorted keys and no
whitespace, so key order and formatting do not matter but every value does.
The body is the one the JSON parser produced, which settles equality:

  - C{1}, C{1.0} and C{true} stay distinct (C{json.dumps} writes C{1},
    C{1.0} and C{true}); so do C{100} and C{1e2} (an L{int} and the
    L{float} C{100.0}), and C{0.0} and C{-0.0}. Distinct spellings that a
    provider might treat alike therefore miss, which costs a call, never a
    wrong answer.
  - Spellings that parse to the same value key the same: C{0.7} and
    C{0.70} are both the float 0.7, written back as C{0.7}; C{"\\u00e9"}
    and C{"\u00e9"} are the same string.

The parts are joined unambiguously (each is length-prefixed), so scope
C{"a"} with route C{"bc"} never meets scope C{"ab"} with route C{"c"}.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

# Top-level body fields that never change the answer, for every route.
# C{stream} and C{stream_options} only choose how the answer is delivered
# (the cache replays a stored answer as a stream when asked), and C{user} is
# an end-user id kept for the provider's abuse monitoring.
IGNORED_FIELDS: frozenset[str] = frozenset({"stream", "stream_options", "user"})

# For the Responses and Messages routes C{metadata} is answer-neutral too
# (tags the caller attaches for its own bookkeeping). Pass this as
# C{ignore=} for those routes. Note that the Responses API echoes
# C{metadata} and C{user} back in the response object: whoever replays a
# hit there must put the asking request's values in, not the stored ones.
IGNORED_FIELDS_WITH_METADATA: frozenset[str] = IGNORED_FIELDS | {"metadata"}

# Bumped whenever the canonical form changes, so old entries in a shared
# store are simply never met again rather than misread.
KEY_VERSION = b"llmedge-cache-1"


def canonical_body(body: dict, ignore: Iterable[str] = IGNORED_FIELDS) -> bytes:
    """
    The body as canonical UTF-8 JSON, without the C{ignore}d top-level
    fields.

    Only top-level fields are ignored: a nested C{"user"} (say, inside a
    tool's JSON schema) is part of the question.

    Lone surrogates (which the JSON parser accepts from C{"\\ud800"}) are
    encoded with C{surrogatepass} rather than raising: a client must not be
    able to fail a request through the cache.

    @param body: A JSON object as parsed by L{json.loads} (string keys).
    """
    ignored = frozenset(ignore)
    kept = {name: value for name, value in body.items() if name not in ignored}
    text = json.dumps(kept, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _framed(part: bytes) -> bytes:
    """
    C{part} prefixed by its length, so that no concatenation of framed
    parts can be read as a different split of the same bytes.
    """
    return b"%d:" % (len(part),) + part


def cache_key(
    scope: str,
    route: str,
    body: dict,
    ignore: Iterable[str] = IGNORED_FIELDS,
) -> str:
    """
    The cache key of a request: a 64-character SHA-256 hex digest.

    @param scope: Whose cache: an API key's id, or C{"global"}. Different
        scopes never share an entry, which is what keeps one tenant from
        reading another's answers.
    @param route: Which API, e.g. C{"chat.completions"}: the same body
        means different things on different routes.
    @param body: The parsed request body.
    @param ignore: The top-level fields that do not change the answer on
        this route; L{IGNORED_FIELDS} unless the route says otherwise (see
        L{IGNORED_FIELDS_WITH_METADATA}).
    """
    digest = hashlib.sha256(KEY_VERSION)
    for part in (
        scope.encode("utf-8", "surrogatepass"),
        route.encode("utf-8", "surrogatepass"),
        canonical_body(body, ignore),
    ):
        digest.update(_framed(part))
    return digest.hexdigest()
