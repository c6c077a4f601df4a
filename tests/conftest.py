from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from hookline.config import Settings

from .pg import Template, database_url
from .receiver import Receiver

API_KEY = "test-admin-key"
#: base64 of 32 bytes: the key that seals webhook secrets in tests
TEST_SECRET_KEY = "dGhpcnR5LXR3by1ieXRlLWtleS1mb3ItdGVzdHMhISE="
BACKENDS = ["sqlite", "postgres"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_template() -> Iterator[Template]:
    template = Template()
    template.create()
    yield template
    template.destroy()


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database URL: a SQLite file, or a PostgreSQL database."""
    backend = getattr(request, "param", "sqlite")
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/hookline.db"
        return
    template: Template = request.getfixturevalue("pg_template")
    name = template.fresh()
    yield database_url(name)
    template.drop(name)


@pytest.fixture
def settings(database: str) -> Settings:
    """Loopback allowed, short retries and deadlines."""
    return Settings(
        database_url=database,
        api_key=API_KEY,
        secret_key=TEST_SECRET_KEY,
        egress_allow=(ipaddress.ip_network("127.0.0.0/8"),),
        retry_schedule=(0, 0.2, 0.4),
        retry_jitter=0,
        attempt_timeout=2,
        lease_seconds=4,
        poll_interval=0.2,
    )
