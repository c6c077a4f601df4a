"""Test inboxes: request catchers inside hookline, so trying a webhook sends no data out.

A webhook whose Payload URL starts with ``HOOKLINE_PUBLIC_URL/inbox/`` is delivered by
handing the request to its inbox in-process; nothing crosses the network or the egress
guard. Inboxes expire and keep only their newest requests.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from .errors import NotFound, PayloadTooLarge
from .ids import new_id
from .models import Inbox, InboxRequest
from .verify import SignatureError, verify_signature, verify_standard_webhook

if TYPE_CHECKING:
    from .service import Service

MAX_INBOX_NAME = 255


@dataclass(frozen=True, slots=True, kw_only=True)
class SignatureCheck:
    """Whether an inbox request's signatures verify with a secret someone typed."""

    peopleforce: str  #: "valid", "invalid: <why>" or "absent"
    standard: str


def _check(verify: Callable[[], None], present: bool) -> str:
    if not present:
        return "absent"
    try:
        verify()
    except SignatureError as exc:
        return f"invalid: {exc}"
    return "valid"


class Inboxes:
    """Test inboxes: request catchers inside hookline, so trying a webhook sends no data out."""

    def __init__(self, service: Service) -> None:
        self._service = service

    def url(self, inbox: Inbox) -> str:
        return self._service.settings.inbox_prefix + inbox.token

    async def create(self, tenant_id: str, name: str = "") -> Inbox:
        svc = self._service
        now = svc.clock()
        inbox = Inbox(
            id=new_id("inb"),
            tenant_id=tenant_id,
            name=(name or "").strip()[:MAX_INBOX_NAME] or "Test inbox",
            token=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(seconds=svc.settings.inbox_ttl),
        )
        await svc.store.add_inbox(inbox)
        return inbox

    async def open_ones(self, tenant_id: str) -> list[Inbox]:
        svc = self._service
        return await svc.store.list_inboxes(tenant_id, svc.clock())

    async def get(self, tenant_id: str, inbox_id: str) -> tuple[Inbox, list[InboxRequest]]:
        svc = self._service
        inbox = await svc.store.get_inbox(tenant_id, inbox_id)
        if inbox.expires_at <= svc.clock():
            raise NotFound(f"inbox {inbox_id} has expired")
        return inbox, await svc.store.inbox_requests(inbox.id, svc.settings.inbox_keep)

    async def delete(self, tenant_id: str, inbox_id: str) -> None:
        await self._service.store.delete_inbox(tenant_id, inbox_id)

    async def capture(self, token: str, headers: dict[str, str], body: bytes) -> bool:
        """Keep a request sent to an inbox URL; False when no such inbox is open."""
        svc = self._service
        if len(body) > svc.settings.inbox_body_max:
            raise PayloadTooLarge(
                f"a test inbox keeps bodies of at most {svc.settings.inbox_body_max} bytes"
            )
        now = svc.clock()
        request = InboxRequest(
            id=new_id("req"), inbox_id="", received_at=now, headers=headers, body=body
        )
        return await svc.store.capture(token, request, now, svc.settings.inbox_keep)

    def check(self, request: InboxRequest, secret: str) -> SignatureCheck:
        header = self._service.settings.signature_header.lower()
        lowered = {name.lower(): value for name, value in request.headers.items()}
        return SignatureCheck(
            peopleforce=_check(
                lambda: verify_signature(request.body, lowered.get(header), secret),
                header in lowered,
            ),
            standard=_check(
                # the inbox shows requests after the fact: the replay window does not apply
                lambda: verify_standard_webhook(request.body, lowered, secret, tolerance=10**9),
                "webhook-signature" in lowered,
            ),
        )
