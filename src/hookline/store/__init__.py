"""Storage backends behind one interface (``base.Store``)."""

from __future__ import annotations

from ..errors import ConfigurationError
from ..secretbox import SecretBox
from .base import NewEvent, Store, StoredEvent


def open_store(database_url: str, box: SecretBox, *, pool_size: int = 10) -> Store:
    """The store for a ``HOOKLINE_DATABASE_URL``; ``box`` seals webhook secrets."""
    if database_url.startswith("sqlite://"):
        from .sqlite import SqliteStore

        return SqliteStore(SqliteStore.path_of(database_url), box)
    if database_url.startswith(("postgresql://", "postgres://")):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # asyncpg is the `postgres` extra
            raise ConfigurationError(
                "PostgreSQL needs the driver: pip install 'hookline[postgres]'"
            ) from exc
        return PostgresStore(database_url, box, pool_size=pool_size)
    raise ConfigurationError(
        f"unsupported database URL {database_url.split('://')[0]}://...; "
        "use sqlite:///path/to/file.db or postgresql://user@host/dbname"
    )


__all__ = ["NewEvent", "Store", "StoredEvent", "open_store"]
