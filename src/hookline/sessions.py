"""Web UI sign-in: an API key buys a session; the browser holds only its token."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import orjson

from .errors import InvalidInput, NotFound
from .ids import token_hash
from .models import Session

if TYPE_CHECKING:
    from .service import Service

PORTAL_PURPOSE = "hookline portal links"
MAX_PORTAL_LINK = 7 * 86400


class Sessions:
    """Web UI sign-in: an API key buys a session; the browser holds its token."""

    def __init__(self, service: Service) -> None:
        self._service = service

    async def sign_in(self, api_key: str) -> tuple[str, Session]:
        svc = self._service
        tenant_id = (await svc.authenticate(api_key)).tenant_id
        return await self._open(tenant_id, portal=False, ttl=svc.settings.session_ttl)

    async def _open(self, tenant_id: str, *, portal: bool, ttl: float) -> tuple[str, Session]:
        svc = self._service
        token = secrets.token_urlsafe(32)
        now = svc.clock()
        session = Session(
            token_hash=token_hash(token),
            tenant_id=tenant_id,
            csrf_token=secrets.token_urlsafe(32),
            expires_at=now + timedelta(seconds=ttl),
            portal=portal,
        )
        await svc.store.add_session(session, now)
        return token, session

    # -- portal links: Settings → Webhooks of one tenant, for the operator's own product -------

    async def portal_link(self, tenant_id: str, expires_in: float) -> tuple[str, datetime]:
        """A signed link that opens this tenant's Settings → Webhooks, and only that."""
        svc = self._service
        if not 60 <= expires_in <= MAX_PORTAL_LINK:
            raise InvalidInput("expires_in", f"between 60 and {MAX_PORTAL_LINK} seconds")
        await svc.store.get_tenant(tenant_id)
        expires_at = svc.clock() + timedelta(seconds=expires_in)
        claims = orjson.dumps({"t": tenant_id, "e": int(expires_at.timestamp())})
        body = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        signature = hmac.new(svc.box.derive(PORTAL_PURPOSE)[0], body.encode(), hashlib.sha256)
        token = f"{body}.{base64.urlsafe_b64encode(signature.digest()).decode().rstrip('=')}"
        return f"{svc.settings.base_url}/portal/{token}", expires_at

    async def open_portal(self, token: str) -> tuple[str, Session]:
        """A portal session from a link's token; NotFound if forged, expired or malformed."""
        svc = self._service
        body, _, signature = token.partition(".")
        try:
            given = base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4))
            claims = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            tenant_id, expires = str(claims["t"]), int(claims["e"])
        except (ValueError, KeyError, TypeError, binascii.Error, orjson.JSONDecodeError):
            raise NotFound("this portal link is not valid") from None
        expected = [
            hmac.new(key, body.encode(), hashlib.sha256).digest()
            for key in svc.box.derive(PORTAL_PURPOSE)
        ]
        if not any(hmac.compare_digest(given, candidate) for candidate in expected):
            raise NotFound("this portal link is not valid")
        remaining = expires - svc.clock().timestamp()
        if remaining <= 0:
            raise NotFound("this portal link has expired; ask for a new one")
        await svc.store.get_tenant(tenant_id)
        return await self._open(
            tenant_id, portal=True, ttl=min(remaining, svc.settings.session_ttl)
        )

    async def find(self, token: str | None) -> Session | None:
        if not token:
            return None
        svc = self._service
        return await svc.store.get_session(token_hash(token), svc.clock())

    async def sign_out(self, token: str) -> None:
        await self._service.store.delete_session(token_hash(token))
