"""hookline: self-hosted webhook delivery.

``hookline.verify`` needs nothing but the standard library; the client classes load their
dependencies only when first used, so a receiver can install hookline for verification alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .__about__ import __version__

if TYPE_CHECKING:
    from .client import AsyncClient, Client, ClientError

__all__ = ["AsyncClient", "Client", "ClientError", "__version__"]


def __getattr__(name: str) -> Any:
    if name in {"AsyncClient", "Client", "ClientError"}:
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'hookline' has no attribute {name!r}")
