"""Verify hookline's signatures on the receiving side. Standard library only.

    from hookline.verify import verify_signature, SignatureError

    try:
        verify_signature(raw_body, request.headers.get("X-PeopleForce-Signature"), secret)
    except SignatureError as exc:
        return 403, str(exc)

Always pass the raw request body (bytes, or the exact text, treated as UTF-8), never a
re-serialised JSON object.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Mapping

from .signing import peopleforce_signature, standard_signature

__all__ = ["SignatureError", "verify_signature", "verify_standard_webhook"]

DEFAULT_TOLERANCE = 300


class SignatureError(ValueError):
    """The request's signature is missing, malformed or does not match."""


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def verify_signature(body: bytes | str, signature_header: str | None, secret: str) -> None:
    """Check an ``X-PeopleForce-Signature`` header; raise ``SignatureError`` unless it matches."""
    if not signature_header:
        raise SignatureError("missing signature header")
    if not signature_header.startswith("sha256="):
        raise SignatureError("malformed signature header: expected 'sha256=<hex digest>'")
    expected = peopleforce_signature(secret, _as_bytes(body))
    if not hmac.compare_digest(expected.encode(), signature_header.strip().encode()):
        raise SignatureError("signature does not match")


def verify_standard_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> None:
    """Check Standard Webhooks headers (id, timestamp within ``tolerance`` s, v1 signature)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not msg_id or not timestamp_text or not signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise SignatureError("malformed webhook-timestamp: expected Unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance: possible replay")
    expected = standard_signature(secret, msg_id, timestamp, _as_bytes(body)).encode()
    for candidate in signatures.split():
        if hmac.compare_digest(expected, candidate.encode()):
            return
    raise SignatureError("no webhook-signature matches")
