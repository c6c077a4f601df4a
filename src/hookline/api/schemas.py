"""The API's shapes: pydantic models for requests and the documented responses, and the
functions that turn domain records into response JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from ..models import ApiKey, Attempt, Delivery, DeliveryDetail, Event, Tenant, Topic, Webhook


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def text(body: bytes | None) -> str | None:
    return None if body is None else body.decode("utf-8", errors="replace")


# -- requests ----------------------------------------------------------------------------------


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Any = Field(description="1 to 255 characters, to find the webhook later.")
    url: Any = Field(description="The Payload URL: http:// or https://, at most 2048 characters.")
    topics: Any = Field(description="One or more topic names from the catalog.")
    secret: Any = Field(
        default=None,
        description='Optional. A string to sign payloads with, or "generate" for a strong '
        "random whsec_ secret, returned once in this response.",
    )
    enabled: Any = True
    max_in_flight: Any = Field(
        default=None, description="Requests in flight at most (default HOOKLINE_MAX_IN_FLIGHT)."
    )
    rate_limit: Any = Field(default=None, description="Requests per second at most, or null.")
    ordered: Any = Field(default=False, description="One delivery at a time, in publish order.")


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Any = None
    url: Any = None
    topics: Any = None
    secret: Any = Field(
        default=None, description='A new secret, "generate", or null to remove the secret.'
    )
    enabled: Any = None
    max_in_flight: Any = None
    rate_limit: Any = None
    ordered: Any = None


class TestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic: str | None = Field(default=None, description="Defaults to the webhook's first topic.")


class EventIn(BaseModel):
    """What to POST to /api/v1/events; the body is stored and sent byte for byte."""

    action: str = Field(description="The topic, e.g. employee_create.")
    data: dict[str, Any]


# -- responses ---------------------------------------------------------------------------------


class WebhookOut(BaseModel):
    id: str
    name: str
    url: str
    topics: list[str]
    enabled: bool
    has_secret: bool
    created_at: str
    updated_at: str
    secret: str | None = Field(
        default=None, description="Only in the response that generated it; never again."
    )

    max_in_flight: int
    rate_limit: float | None
    ordered: bool
    disabled_at: str | None = Field(description="When hookline disabled it by itself.")
    disabled_reason: str | None
    failing_since: str | None = Field(description="Since when every attempt has failed.")
    previous_secret_until: str | None = Field(
        description="After a rotation: until when the old secret still signs."
    )


class RotateSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: Any = Field(default="generate", description='The new secret, or "generate".')
    overlap: Any = Field(
        default=None,
        description="Seconds the old secret keeps signing beside the new one "
        "(default HOOKLINE_SECRET_OVERLAP, 24 h).",
    )


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None
    status: str = Field(
        default="failed",
        description='"failed" (failed and skipped deliveries), "skipped", or "all".',
    )


class ReplayAccepted(BaseModel):
    replayed: int


class WebhookList(BaseModel):
    data: list[WebhookOut]
    next_cursor: str | None


class TopicOut(BaseModel):
    name: str
    description: str
    group: str
    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]


class TopicList(BaseModel):
    data: list[TopicOut]
    next_cursor: str | None


class EventAccepted(BaseModel):
    id: str
    action: str
    created_at: str
    deliveries: int


class EventOut(EventAccepted):
    data: Any


class TestSentOut(BaseModel):
    event_id: str
    delivery_id: str


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    webhook_id: str
    topic: str
    status: str = Field(description="pending, delivering, succeeded or failed")
    attempts_count: int
    next_attempt_at: str | None
    last_status_code: int | None
    created_at: str


class DeliveryList(BaseModel):
    data: list[DeliveryOut]
    next_cursor: str | None


class RequestOut(BaseModel):
    url: str
    headers: dict[str, str]
    body: str


class ResponseOut(BaseModel):
    status: int
    headers: dict[str, str]
    body: str


class ErrorOut(BaseModel):
    kind: str
    message: str
    explanation: str


class AttemptOut(BaseModel):
    id: str
    number: int
    started_at: str
    duration_ms: int
    manual: bool
    request: RequestOut
    response: ResponseOut | None
    error: ErrorOut | None


class DeliveryDetailOut(DeliveryOut):
    attempts: list[AttemptOut]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Any = Field(description="1 to 255 characters.")


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: str


class TenantList(BaseModel):
    data: list[TenantOut]
    next_cursor: str | None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default="", description="To recognise it in the list later.")


class ApiKeyCreated(BaseModel):
    id: str
    key: str = Field(description="The key itself: shown this once, stored only as a hash.")
    created_at: str


class ApiKeyOut(BaseModel):
    id: str
    name: str
    is_admin: bool
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


class ApiKeyList(BaseModel):
    data: list[ApiKeyOut]
    next_cursor: str | None


class PortalLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_in: int = Field(default=3600, description="Seconds the link works (60 to 7 days).")


class PortalLinkOut(BaseModel):
    url: str = Field(description="Opens this tenant's Settings → Webhooks and nothing else.")
    expires_at: str


class Problem(BaseModel):
    code: str
    detail: str


# -- records to JSON ---------------------------------------------------------------------------


def webhook_json(webhook: Webhook, generated_secret: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": webhook.id,
        "name": webhook.name,
        "url": webhook.url,
        "topics": list(webhook.topics),
        "enabled": webhook.enabled,
        "has_secret": webhook.has_secret,
        "created_at": iso(webhook.created_at),
        "updated_at": iso(webhook.updated_at),
        "max_in_flight": webhook.max_in_flight,
        "rate_limit": webhook.rate_limit,
        "ordered": webhook.ordered,
        "disabled_at": iso(webhook.disabled_at),
        "disabled_reason": webhook.disabled_reason,
        "failing_since": iso(webhook.failing_since),
        "previous_secret_until": iso(webhook.previous_secret_until),
    }
    if generated_secret is not None:
        out["secret"] = generated_secret
    return out


def topic_json(topic: Topic) -> dict[str, Any]:
    return {
        "name": topic.name,
        "description": topic.description,
        "group": topic.group,
        "schema": topic.schema,
        "example": topic.example,
    }


def event_accepted_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "action": event.action,
        "created_at": iso(event.created_at),
        "deliveries": event.deliveries_count,
    }


def event_json(event: Event) -> dict[str, Any]:
    return {**event_accepted_json(event), "data": orjson.loads(event.payload).get("data")}


def delivery_json(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "event_id": delivery.event_id,
        "webhook_id": delivery.webhook_id,
        "topic": delivery.topic,
        "status": delivery.status.value,
        "attempts_count": delivery.attempts_count,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "last_status_code": delivery.last_status_code,
        "created_at": iso(delivery.created_at),
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "number": attempt.number,
        "started_at": iso(attempt.started_at),
        "duration_ms": attempt.duration_ms,
        "manual": attempt.manual,
        "request": {
            "url": attempt.request_url,
            "headers": attempt.request_headers,
            "body": text(attempt.request_body),
        },
        "response": None
        if attempt.response_status is None
        else {
            "status": attempt.response_status,
            "headers": attempt.response_headers or {},
            "body": text(attempt.response_body) or "",
        },
        "error": None
        if attempt.error_kind is None
        else {
            "kind": attempt.error_kind.value,
            "message": attempt.error_message or "",
            "explanation": attempt.error_kind.explanation,
        },
    }


def delivery_detail_json(detail: DeliveryDetail) -> dict[str, Any]:
    return {
        **delivery_json(detail.delivery),
        "attempts": [attempt_json(attempt) for attempt in detail.attempts],
    }


def tenant_json(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "created_at": iso(tenant.created_at)}


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "is_admin": key.is_admin,
        "created_at": iso(key.created_at),
        "last_used_at": iso(key.last_used_at),
        "revoked_at": iso(key.revoked_at),
    }
