from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookline.store import Store, open_store


@pytest.fixture(params=["sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh, migrated store on every backend (one contract suite for all of them)."""
    backend = open_store(f"sqlite:///{tmp_path}/store.db")
    await backend.migrate()
    yield backend
    await backend.close()
