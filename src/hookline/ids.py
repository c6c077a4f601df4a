"""Identifiers: a type prefix and a time-ordered, URL-safe body.

The body is a ULID (48-bit millisecond time + 80 random bits in Crockford base32), so sorting ids
sorts by creation time: cursors and "newest first" need no second column.
"""

from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """Return a new id such as ``wh_01J9Z3...``."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return prefix + "_" + "".join(reversed(chars))
