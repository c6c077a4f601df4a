from __future__ import annotations

from pathlib import Path

import hookline.store

MIGRATIONS = Path(hookline.store.__file__).parent / "migrations"


def versions(backend: str) -> list[int]:
    """The migration versions shipped for a backend, in order."""
    return sorted(int(path.name.split("_")[0]) for path in (MIGRATIONS / backend).glob("*.sql"))
