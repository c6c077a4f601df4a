"""Identifiers: a type prefix and a time-ordered, URL-safe body.

The body is a ULID (48-bit millisecond time + 80 random bits in Crockford base32), so sorting ids
sorts by creation time: cursors and "newest first" need no second column. Within one
millisecond a process counts up from the last id it made, so its own ids never tie or swap.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _encode(prefix: str, value: int) -> str:
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return prefix + "_" + "".join(reversed(chars))


_last = 0
_lock = threading.Lock()


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """Return a new id such as ``wh_01J9Z3...``."""
    global _last
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    with _lock:
        if value >> 80 == _last >> 80 and value <= _last:
            value = _last + 1
        _last = value
    return _encode(prefix, value)


def id_floor(prefix: str, moment_ms: int) -> str:
    """The smallest id made at or after ``moment_ms``: a range bound for time-ordered ids."""
    return _encode(prefix, moment_ms << 80)


def token_hash(token: str) -> str:
    """What is stored of a bearer token (an API key, a session): its SHA-256, in hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
