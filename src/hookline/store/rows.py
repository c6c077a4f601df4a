"""Rows to records, for every backend.

A backend hands over a mapping whose values are already Python values (times as aware
datetimes, JSON columns parsed, booleans as booleans or 0/1); these functions name the fields.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..models import Attempt, Delivery, DeliveryStatus, ErrorKind, Event, Job, Page, Webhook


class Row(Protocol):
    """A row by column name: a dict, an ``sqlite3.Row``-derived dict, an ``asyncpg.Record``."""

    def __getitem__(self, column: str, /) -> Any: ...


#: what a missing row is called in NotFound messages, by table
NOUNS = {"webhooks": "webhook", "events": "event", "deliveries": "delivery"}


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


def job_from(row: Row, lease_token: str) -> Job:
    """A claimed delivery joined with its webhook's URL and secret and its event's payload."""
    return Job(
        delivery_id=row["id"],
        tenant_id=row["tenant_id"],
        webhook_id=row["webhook_id"],
        url=row["url"],
        secret=row["secret"],
        payload=bytes(row["payload"]),
        attempt_number=row["attempts_count"] + 1,
        schedule_step=row["schedule_step"],
        manual=bool(row["manual"]),
        lease_token=lease_token,
    )


def page_of(items: list[Any], limit: int) -> Page:
    """A page from up to ``limit + 1`` items: the extra one only says there is more."""
    more = len(items) > limit
    items = items[:limit]
    return Page(items=tuple(items), next_cursor=items[-1].id if more else None)
