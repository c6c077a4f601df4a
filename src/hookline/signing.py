"""How hookline signs a payload. Standard library only: ``hookline.verify`` shares it.

Two schemes ride on every signed request:

- ``X-PeopleForce-Signature: sha256=<hex HMAC-SHA256(key=secret as UTF-8, msg=body)>``, the
  reference product's scheme;
- Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature: v1,<base64>``)
  over ``{id}.{timestamp}.{body}``. The key is the base64-decoded part of a ``whsec_`` secret,
  or else the secret's UTF-8 bytes; a receiver using the official libraries with a secret that
  is not ``whsec_`` passes ``"whsec_" + base64(secret)``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

SECRET_PREFIX = "whsec_"


def generate_secret() -> str:
    """A strong random secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def peopleforce_signature(secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return "sha256=" + digest


def standard_key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        try:
            return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except binascii.Error:
            pass  # not base64 after all: sign with the bytes as typed
    return secret.encode("utf-8")


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(standard_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signature_headers(
    secret: str | None,
    msg_id: str,
    timestamp: int,
    body: bytes,
    header_name: str,
    previous_secret: str | None = None,
) -> dict[str, str]:
    """The headers that identify and sign one request. During a secret rotation's overlap,
    ``webhook-signature`` carries a signature by each secret (space-separated, as Standard
    Webhooks allows); the single-valued ``header_name`` carries the new secret's."""
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers[header_name] = peopleforce_signature(secret, body)
        signatures = [standard_signature(secret, msg_id, timestamp, body)]
        if previous_secret:
            signatures.append(standard_signature(previous_secret, msg_id, timestamp, body))
        headers["webhook-signature"] = " ".join(signatures)
    return headers
