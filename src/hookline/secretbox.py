"""Webhook secrets at rest: AES-256-GCM under a key that never enters the database.

A stored secret reads ``enc:v1:<key id>:<base64(nonce + ciphertext)>``; the key id names which
of the known keys sealed it, so several keys can be read at once while ``hookline rotate-key``
moves everything to a new one. Keys come from ``HOOKLINE_SECRET_KEY`` (base64, comma-separated,
the first one seals) or else from a key file created once, with 0600 permissions, next to the
data. A process that meets a key id it does not know reads the key file again: a rotation needs
no restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import ConfigurationError

PREFIX = "enc:v1:"
#: opened secrets kept in memory, at most (one per webhook and secret in use)
_OPENED_KEPT = 10_000
KEY_BYTES = 32


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:8]


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode()


def parse_keys(text: str) -> list[bytes]:
    keys = []
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            key = base64.b64decode(part, validate=True)
        except binascii.Error:
            raise ConfigurationError("a secret key is not base64") from None
        if len(key) != KEY_BYTES:
            raise ConfigurationError(f"a secret key must be {KEY_BYTES} bytes, base64-encoded")
        keys.append(key)
    if not keys:
        raise ConfigurationError("no secret key given")
    return keys


def _create_key_file(path: Path) -> None:
    """Write a new key file, 0600 from the start, appearing whole or not at all: processes
    starting together agree on the first one written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(encode_key(new_key()) + "\n")
    try:
        os.link(draft, path)  # fails if another process got there first: theirs wins
    except FileExistsError:
        pass
    finally:
        draft.unlink()


class SecretBox:
    def __init__(self, keys: list[bytes], key_file: Path | None = None) -> None:
        self._keys = {key_id(key): key for key in keys}
        self._primary = keys[0]
        self._file = key_file
        self._lock = threading.Lock()
        self._opened: dict[str, str] = {}

    @classmethod
    def from_settings(cls, env_keys: str | None, key_file: Path) -> SecretBox:
        if env_keys:
            return cls(parse_keys(env_keys))
        if not key_file.exists():
            _create_key_file(key_file)
        return cls(parse_keys(key_file.read_text()), key_file)

    @property
    def primary_id(self) -> str:
        return key_id(self._primary)

    def derive(self, purpose: str) -> list[bytes]:
        """Keys for another use (signing portal links), from each known key: the first from
        the primary. Rotating the secret key retires them too."""
        ordered = [self._primary] + [k for k in self._keys.values() if k != self._primary]
        return [hmac.new(key, purpose.encode(), hashlib.sha256).digest() for key in ordered]

    def seal(self, secret: str | None) -> str | None:
        if secret is None:
            return None
        nonce = os.urandom(12)
        sealed = AESGCM(self._primary).encrypt(nonce, secret.encode("utf-8"), None)
        body = base64.b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self.primary_id}:{body}"

    def open(self, stored: str | None) -> str | None:
        if stored is None or not stored.startswith(PREFIX):
            return stored  # written before encryption existed: sealed again on the next save
        # a sealed text always opens to the same secret (its nonce makes it unique): the
        # dispatcher opens each webhook's secret once, not once per delivery
        opened = self._opened.get(stored)
        if opened is None:
            opened = self._open(stored)
            if len(self._opened) >= _OPENED_KEPT:
                self._opened.clear()
            self._opened[stored] = opened
        return opened

    def _open(self, stored: str) -> str:
        kid, _, body = stored[len(PREFIX) :].partition(":")
        key = self._keys.get(kid) or self._reload(kid)
        raw = base64.b64decode(body)
        return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode("utf-8")

    def sealed_by_primary(self, stored: str | None) -> bool:
        return stored is None or stored.startswith(f"{PREFIX}{self.primary_id}:")

    def _reload(self, kid: str) -> bytes:
        """A key id we do not know: another process rotated; read the key file again."""
        with self._lock:
            if kid not in self._keys and self._file is not None and self._file.exists():
                keys = parse_keys(self._file.read_text())
                self._keys = {key_id(key): key for key in keys}
                self._primary = keys[0]
        if kid not in self._keys:
            raise ConfigurationError(
                f"a webhook secret is sealed with key {kid}, which this process does not have"
            )
        return self._keys[kid]
