"""A dump of the database holds no webhook secret: they are sealed with AES-GCM under a key
that lives outside it, and a rotation moves them to a new key while hookline runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hookline.config import Settings
from hookline.models import DEFAULT_TENANT
from hookline.runtime import Runtime
from hookline.secretbox import SecretBox, encode_key, key_id, new_key, parse_keys

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def dump(database: str) -> bytes:
    """Everything the database holds on disk or would give to pg_dump."""
    if database.startswith("sqlite"):
        path = Path(database.removeprefix("sqlite:///"))
        return b"".join(
            Path(f"{path}{suffix}").read_bytes()
            for suffix in ("", "-wal")
            if Path(f"{path}{suffix}").exists()
        )
    return subprocess.run(["pg_dump", database], capture_output=True, check=True).stdout


async def test_a_database_dump_holds_no_secret(settings: Settings):
    async with Runtime(settings, dispatch=False) as runtime:
        svc = runtime.service
        made = await svc.create_webhook(
            DEFAULT_TENANT, name="a", url="https://example.com/a", topics=["employee_create"],
            secret=SECRET,
        )  # fmt: skip
        generated = await svc.create_webhook(
            DEFAULT_TENANT, name="b", url="https://example.com/b", topics=["employee_create"],
            secret="generate",
        )  # fmt: skip
        assert (await svc.get_webhook(DEFAULT_TENANT, made.webhook.id)).secret == SECRET
        assert generated.generated_secret
        contents = dump(settings.database_url)
    assert SECRET.encode() not in contents
    assert generated.generated_secret.encode() not in contents
    assert b"enc:v1:" in contents


def test_sealing_round_trips_and_tampering_is_refused():
    box = SecretBox([new_key()])
    sealed = box.seal("s3cret ✓")
    assert sealed is not None and sealed.startswith(f"enc:v1:{box.primary_id}:")
    assert box.seal("s3cret ✓") != sealed  # a fresh nonce every time
    assert box.open(sealed) == "s3cret ✓"
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(Exception):  # noqa: B017 - cryptography's InvalidTag
        box.open(tampered)
    assert box.open(None) is None and box.open("legacy plain") == "legacy plain"


async def test_rotate_key_reseals_while_running_processes_keep_working(
    settings: Settings, tmp_path: Path
):
    key_file = tmp_path / "secret.key"
    old_key = new_key()
    key_file.write_text(encode_key(old_key) + "\n")
    os.chmod(key_file, 0o600)
    with_file = settings.with_(secret_key=None, secret_key_file=str(key_file))
    async with Runtime(with_file, dispatch=False) as running:
        made = await running.service.create_webhook(
            DEFAULT_TENANT, name="a", url="https://example.com/a", topics=["employee_create"],
            secret=SECRET,
        )  # fmt: skip
        # what `hookline rotate-key` does: a new key first in the file, then reseal
        fresh = new_key()
        key_file.write_text(encode_key(fresh) + "\n" + key_file.read_text())
        async with Runtime(with_file, dispatch=False) as rotator:
            assert await rotator.store.reseal_secrets() == 1
            assert await rotator.store.reseal_secrets() == 0
        assert f"enc:v1:{key_id(fresh)}:".encode() in dump(settings.database_url)
        # the process started before the rotation reads the new key by itself
        webhook = await running.service.get_webhook(DEFAULT_TENANT, made.webhook.id)
        assert webhook.secret == SECRET
    only_new = SecretBox(parse_keys(encode_key(fresh)))
    assert only_new.primary_id == key_id(fresh)


def test_a_key_file_is_made_once_with_0600(tmp_path: Path):
    path = tmp_path / "data" / "secret.key"
    first = SecretBox.from_settings(None, path)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    again = SecretBox.from_settings(None, path)
    assert first.primary_id == again.primary_id
    assert SecretBox.from_settings(encode_key(new_key()), path).primary_id != first.primary_id
