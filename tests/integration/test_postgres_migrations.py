"""PostgreSQL-only: what the store contract cannot say for every backend."""

from __future__ import annotations

import asyncio
import secrets

import asyncpg
import pytest

from hookline.errors import StoreUnavailable
from hookline.secretbox import SecretBox, new_key
from hookline.store.postgres import PostgresStore

from ..pg import ADMIN_URL, database_url
from ..versions import versions


@pytest.fixture
async def empty_database(pg_template):
    name = f"hookline_empty_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_URL)
    await admin.execute(f"CREATE DATABASE {name}")
    yield database_url(name)
    await admin.execute(f"DROP DATABASE {name} WITH (FORCE)")
    await admin.close()


async def test_processes_starting_together_migrate_once(empty_database):
    stores = [PostgresStore(empty_database, SecretBox([new_key()])) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(store.migrate() for store in stores))
    finally:
        for store in stores:
            await store.close()
    assert sorted(applied) == [[], [], [], versions("postgres")]


async def test_an_unreachable_server_is_store_unavailable():
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/nothing", SecretBox([new_key()]))
    with pytest.raises(StoreUnavailable, match="PostgreSQL"):
        await store.count_api_keys()
    await store.close()
