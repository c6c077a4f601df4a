from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hookline.store import Store, open_store

from ..conftest import BACKENDS


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Every integration test that touches a database runs on every backend."""
    if "database" in metafunc.fixturenames:
        metafunc.parametrize("database", BACKENDS, indirect=True)


@pytest.fixture
async def store(database: str) -> AsyncIterator[Store]:
    backend = open_store(database)
    await backend.migrate()
    yield backend
    await backend.close()
