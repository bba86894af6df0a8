# -*- test-case-name: tests.unit.test_resources -*-
"""
How llmedge writes the JSON documents it makes itself (answers of the mock
provider, of C{/v1/models}, replays): one function, so every document
comes out alike, whichever layer makes it.
"""

from __future__ import annotations

import json
from typing import Any


#: Made once: C{json.dumps} with any argument of its own builds a new
#: encoder per call, which costs more than encoding a small document.
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def json_bytes(document: Any) -> bytes:
    """
    Serialise a response document: compact, UTF-8, no NaN.
    """
    return _encode(document).encode("utf-8")
