"""JSON read from files we did not write (a model's metadata, a card, a marker), within limits: a file nested
200,000 levels deep or of many megabytes is a ValueError, as a malformed one is, never a RecursionError."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_BYTES = 4 << 20
MAX_DEPTH = 64
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')  # strings (skipped whole) and brackets


def loads(text: str | bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads with a size and a nesting limit; ValueError (json.JSONDecodeError's base) beyond them."""
    if len(text) > max_bytes:
        raise ValueError(f"{len(text):,} bytes of JSON, over the {max_bytes:,}-byte limit")
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    depth = 0
    for token in _TOKENS.finditer(text):
        mark = token.group()
        if mark in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
        elif mark in "]}":
            depth -= 1
    return json.loads(text)
