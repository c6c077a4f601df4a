"""Web UI sign-in: an API key buys a session; the browser holds only its token."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import TYPE_CHECKING

from .ids import token_hash
from .models import Session

if TYPE_CHECKING:
    from .service import Service


class Sessions:
    """Web UI sign-in: an API key buys a session; the browser holds its token."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def sign_in(self, api_key: str) -> tuple[str, Session]:
        svc = self._service
        tenant_id = (await svc.authenticate(api_key)).tenant_id
        token = secrets.token_urlsafe(32)
        now = svc.clock()
        session = Session(
            token_hash=token_hash(token),
            tenant_id=tenant_id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=svc.settings.session_ttl),
        )
        await svc.store.add_session(session, now)
        return token, session

    async def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        svc = self._service
        return await svc.store.get_session(token_hash(token), svc.clock())

    async def sign_out(self, token: str) -> None:
        await self._service.store.delete_session(token_hash(token))
