"""Storage backends behind one interface (``base.Store``)."""

from __future__ import annotations

from .base import NewEvent, Store, StoredEvent


def open_store(database_url: str) -> Store:
    """The store for a ``HOOKLINE_DATABASE_URL``."""
    if database_url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        return SqliteStore.from_url(database_url)
    raise ValueError(
        f"unsupported database URL {database_url.split('://')[0]}://...; "
        "use sqlite:///path/to/file.db"
    )


__all__ = ["NewEvent", "Store", "StoredEvent", "open_store"]
