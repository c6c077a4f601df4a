"""PostgreSQL for tests: the schema is migrated once into a template database, and each test
gets a fresh database made from it (``CREATE DATABASE ... TEMPLATE``).

Without a reachable server the PostgreSQL tests skip, saying why, except under CI (``CI`` set),
where that is a failure: CI must run them.
"""

from __future__ import annotations

import asyncio
import os
import secrets

import asyncpg
import pytest

from hookline.secretbox import SecretBox, new_key
from hookline.store.postgres import PostgresStore

ADMIN_URL = os.environ.get(
    "HOOKLINE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


async def _admin(*statements: str) -> None:
    conn = await asyncpg.connect(ADMIN_URL, timeout=5)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


def _box() -> SecretBox:
    return SecretBox([new_key()])  # migrations seal nothing: any key does


def unavailable(reason: str) -> None:
    message = f"PostgreSQL is not reachable at {ADMIN_URL}: {reason}"
    if os.environ.get("CI"):
        pytest.fail(message + " (CI must run the PostgreSQL tests)")
    pytest.skip(message)


class Template:
    """The migrated template database of this test session."""

    def __init__(self) -> None:
        self.name = f"hookline_template_{os.getpid()}"

    def create(self) -> None:
        async def create() -> None:
            await _admin(f"DROP DATABASE IF EXISTS {self.name}", f"CREATE DATABASE {self.name}")
            store = PostgresStore(database_url(self.name), _box())
            await store.migrate()
            await store.close()

        try:
            asyncio.run(create())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            unavailable(str(exc))

    def fresh(self) -> str:
        """A new database from the template; returns its name."""
        return asyncio.run(self.fresh_async())

    async def fresh_async(self) -> str:
        name = f"hookline_test_{secrets.token_hex(6)}"
        await _admin(f"CREATE DATABASE {name} TEMPLATE {self.name}")
        return name

    @staticmethod
    def drop(name: str) -> None:
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))

    def destroy(self) -> None:
        self.drop(self.name)
