# -*- test-case-name: tests.unit.test_resources -*-
"""
How llmedge writes the JSON documents it makes itself (answers of the mock
provider, of C{/v1/models}, replays): one function, so every document
comes out alike, whichever layer makes it.
"""

from __future__ import annotations

import json
from typing import Any


def json_bytes(document: Any) -> bytes:
    """
    Serialise a response document: compact, UTF-8, no NaN.
    """
    return json.dumps(
        document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")
