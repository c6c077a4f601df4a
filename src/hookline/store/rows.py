"""Rows to records, for every backend.

A backend hands over a mapping whose values are already Python values (times as aware
datetimes, JSON columns parsed, booleans as booleans or 0/1); these functions name the fields.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, Protocol

from ..models import (
    ApiKey,
    Attempt,
    Delivery,
    DeliveryStatus,
    ErrorKind,
    Event,
    Inbox,
    InboxRequest,
    Job,
    Page,
    Session,
    Tenant,
    Webhook,
)


class Row(Protocol):
    """A row by column name: a dict, an ``sqlite3.Row``-derived dict, an ``asyncpg.Record``."""

    def __getitem__(self, column: str, /) -> Any: ...


#: what a missing row is called in NotFound messages, by table
NOUNS = {
    "webhooks": "webhook",
    "events": "event",
    "deliveries": "delivery",
    "inboxes": "inbox",
    "api_keys": "API key",
}

#: how far back a delivery still being retried may have been created (the default schedule
#: spans about 28 hours): the lower bound of "recent" history queries
RETRY_HORIZON = timedelta(days=2)


def webhook_from(row: Row) -> Webhook:
    return Webhook(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        url=row["url"],
        topics=tuple(row["topics"]),
        enabled=bool(row["enabled"]),
        secret=row["secret"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        max_in_flight=row["max_in_flight"],
        rate_limit=row["rate_limit"],
        ordered=bool(row["ordered"]),
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        failing_since=row["failing_since"],
        paused_until=row["paused_until"],
        previous_secret=row["previous_secret"],
        previous_secret_until=row["previous_secret_until"],
    )


def event_from(row: Row) -> Event:
    return Event(
        id=row["id"],
        tenant_id=row["tenant_id"],
        action=row["action"],
        payload=bytes(row["payload"]),
        created_at=row["created_at"],
        deliveries_count=row["deliveries_count"],
    )


def delivery_from(row: Row) -> Delivery:
    return Delivery(
        id=row["id"],
        tenant_id=row["tenant_id"],
        event_id=row["event_id"],
        webhook_id=row["webhook_id"],
        topic=row["topic"],
        status=DeliveryStatus(row["status"]),
        attempts_count=row["attempts_count"],
        next_attempt_at=row["next_attempt_at"],
        last_status_code=row["last_status_code"],
        created_at=row["created_at"],
        last_duration_ms=row["last_duration_ms"],
    )


def attempt_from(row: Row, request_body: bytes) -> Attempt:
    return Attempt(
        id=row["id"],
        delivery_id=row["delivery_id"],
        number=row["number"],
        manual=bool(row["manual"]),
        started_at=row["started_at"],
        duration_ms=row["duration_ms"],
        request_url=row["request_url"],
        request_headers=row["request_headers"],
        request_body=request_body,
        response_status=row["response_status"],
        response_headers=row["response_headers"],
        response_body=None if row["response_body"] is None else bytes(row["response_body"]),
        error_kind=None if row["error_kind"] is None else ErrorKind(row["error_kind"]),
        error_message=row["error_message"],
    )


def job_from(row: Row, lease_token: str, reveal: Callable[[str | None], str | None]) -> Job:
    """A claimed delivery joined with its webhook's URL and secret (opened by ``reveal``) and
    its event's payload."""
    return Job(
        delivery_id=row["id"],
        tenant_id=row["tenant_id"],
        webhook_id=row["webhook_id"],
        url=row["url"],
        secret=reveal(row["secret"]),
        payload=bytes(row["payload"]),
        attempt_number=row["attempts_count"] + 1,
        schedule_step=row["schedule_step"],
        manual=bool(row["manual"]),
        lease_token=lease_token,
        topic=row["topic"],
        rate_limit=row["rate_limit"],
        previous_secret=reveal(row["previous_secret"]),
    )


def session_from(row: Row) -> Session:
    return Session(
        token_hash=row["token_hash"],
        tenant_id=row["tenant_id"],
        csrf_token=row["csrf_token"],
        expires_at=row["expires_at"],
        portal=bool(row["portal"]),
    )


def inbox_from(row: Row) -> Inbox:
    return Inbox(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        token=row["token"],
        created_at=row["created_at"],
        expires_at=row["expires_at"],
    )


def inbox_request_from(row: Row) -> InboxRequest:
    return InboxRequest(
        id=row["id"],
        inbox_id=row["inbox_id"],
        received_at=row["received_at"],
        headers=row["headers"],
        body=bytes(row["body"]),
    )


def api_key_from(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        is_admin=bool(row["is_admin"]),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def tenant_from(row: Row) -> Tenant:
    return Tenant(id=row["id"], name=row["name"], created_at=row["created_at"])


def page_of(items: list[Any], limit: int) -> Page:
    """A page from up to ``limit + 1`` items: the extra one only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=tuple(items), next_cursor=items[-1].id if more else None)
