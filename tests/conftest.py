from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.config import Settings

from .receiver import Receiver

API_KEY = "test-admin-key"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A real SQLite file, loopback allowed, short retries and deadlines."""
    return Settings(
        database_url=f"sqlite:///{tmp_path}/hookline.db",
        api_key=API_KEY,
        egress_allow=(ipaddress.ip_network("127.0.0.0/8"),),
        retry_schedule=(0, 0.2, 0.4),
        retry_jitter=0,
        attempt_timeout=2,
        lease_seconds=4,
        poll_interval=0.2,
    )
