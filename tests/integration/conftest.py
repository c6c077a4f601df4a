from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hookline.secretbox import SecretBox, parse_keys
from hookline.store import Store, open_store

from ..conftest import BACKENDS, TEST_SECRET_KEY
from ..pg import database_url


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every integration test that touches a database runs on every backend."""
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", BACKENDS, indirect=True)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    backend = open_store(database, SecretBox(parse_keys(TEST_SECRET_KEY)))
    await backend.migrate()
    yield backend
    await backend.close()


@pytest.fixture
def fresh_database(request: pytest.FixtureRequest, database: str, tmp_path):
    """More fresh databases of the test's backend: ``await fresh_database()`` → a URL."""
    made: list[str] = []
    template = None if database.startswith("sqlite") else request.getfixturevalue("pg_template")

    async def make() -> str:
        if template is None:
            made.append(f"sqlite:///{tmp_path}/extra{len(made)}.db")
            return made[-1]
        made.append(await template.fresh_async())
        return database_url(made[-1])

    yield make
    if template is not None:
        for name in made:
            template.drop(name)
