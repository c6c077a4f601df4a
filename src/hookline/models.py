"""The domain: frozen records of webhooks, events, deliveries and attempts.

Stores turn rows into these; the service hands them to the API, UI and CLI. Nothing here does
I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_TENANT = "default"


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  #: waiting for its next attempt (the first one, or a retry)
    DELIVERING = "delivering"  #: leased by a dispatcher; an attempt is in flight
    SUCCEEDED = "succeeded"  #: the receiver answered 2xx
    FAILED = "failed"  #: every scheduled attempt failed; only a redelivery sends it again
    SKIPPED = "skipped"  #: published while its webhook was disabled; a replay sends it


class ErrorKind(enum.StrEnum):
    """Why an attempt failed, with the plain explanation shown next to it."""

    BAD_STATUS = "bad_status"  #: the receiver answered, but not with a 2xx
    REDIRECT = "redirect"  #: the receiver answered 3xx; redirects are never followed
    TIMEOUT = "timeout"  #: no complete answer within the attempt deadline
    CONNECTION_REFUSED = "connection_refused"  #: nothing listens at that address and port
    CONNECTION = "connection"  #: the connection broke (reset, closed mid-response)
    DNS = "dns"  #: the host name does not resolve
    TLS = "tls"  #: the TLS handshake or certificate check failed
    BLOCKED = "blocked"  #: the egress guard refused the destination

    @property
    def explanation(self) -> str:
        return _EXPLANATIONS[self]


_EXPLANATIONS = {
    ErrorKind.BAD_STATUS: "The receiving server answered with a non-2xx status. 404: check the "
    "Payload URL. 5xx: the receiving server failed; it will be retried.",
    ErrorKind.REDIRECT: "The receiver answered with a redirect. hookline never follows "
    "redirects: set the Payload URL to the final address.",
    ErrorKind.TIMEOUT: "The receiver did not answer completely within the attempt deadline. "
    "Answer quickly (2xx first, work later).",
    ErrorKind.CONNECTION_REFUSED: "The connection was refused: check that the receiving server "
    "is up and listening on the Payload URL's host and port.",
    ErrorKind.CONNECTION: "The connection broke before a complete answer arrived.",
    ErrorKind.DNS: "The Payload URL's host name could not be resolved.",
    ErrorKind.TLS: "The TLS handshake failed: check the receiver's certificate.",
    ErrorKind.BLOCKED: "The egress guard refused this address (private, loopback or reserved). "
    "An operator can allow it with HOOKLINE_EGRESS_ALLOW.",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Topic:
    name: str
    description: str
    group: str
    schema: dict[str, Any]
    example: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhook:
    id: str
    tenant_id: str
    name: str
    url: str
    topics: tuple[str, ...]
    enabled: bool
    secret: str | None = field(repr=False)
    created_at: datetime
    updated_at: datetime
    #: requests in flight to this webhook at most, across every dispatcher
    max_in_flight: int = 8
    #: requests per second at most (per dispatching process), or None
    rate_limit: float | None = None
    #: one delivery at a time, in publish order
    ordered: bool = False
    #: set when hookline disabled it by itself, with why
    disabled_at: datetime | None = None
    disabled_reason: str | None = None
    #: since when every attempt has failed (None after a success)
    failing_since: datetime | None = None
    #: the receiver asked to be left alone (429/503 with Retry-After) until then
    paused_until: datetime | None = None
    #: after a rotation, the old secret still signs, beside the new one, until then
    previous_secret: str | None = field(default=None, repr=False)
    previous_secret_until: datetime | None = None

    @property
    def has_secret(self) -> bool:
        return bool(self.secret)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    id: str
    tenant_id: str
    action: str
    #: the exact bytes POSTed to receivers: ``{"action": ..., "data": ...}``
    payload: bytes
    created_at: datetime
    deliveries_count: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Delivery:
    id: str
    tenant_id: str
    event_id: str
    webhook_id: str
    topic: str
    status: DeliveryStatus
    attempts_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    created_at: datetime
    #: how long the last attempt took
    last_duration_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    id: str
    delivery_id: str
    number: int
    started_at: datetime
    duration_ms: int
    request_url: str
    request_headers: dict[str, str]
    #: the event's payload: stored once with the event, not once per attempt
    request_body: bytes
    response_status: int | None
    response_headers: dict[str, str] | None
    response_body: bytes | None
    error_kind: ErrorKind | None
    error_message: str | None
    manual: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryDetail:
    delivery: Delivery
    attempts: tuple[Attempt, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """One page of a newest-first list; ``next_cursor`` continues it."""

    items: tuple[Any, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryFilter:
    tenant_id: str
    webhook_id: str | None = None
    status: DeliveryStatus | None = None
    topic: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PublishedEvent:
    """What publishing answered; replayed as is for a repeated Idempotency-Key."""

    event: Event
    replayed: bool


# -- the dispatcher's side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A claimed delivery with all a dispatcher needs to send it."""

    delivery_id: str
    tenant_id: str
    webhook_id: str
    url: str
    secret: str | None = field(repr=False)
    payload: bytes
    #: the number this attempt will carry (1 for the first)
    attempt_number: int
    #: how many scheduled (non-manual) attempts were made before this one
    schedule_step: int
    manual: bool
    lease_token: str
    #: the event's topic
    topic: str = ""
    #: the webhook's rate limit (requests per second), if any
    rate_limit: float | None = None
    #: a rotated-out secret still signing (Standard Webhooks header), until its overlap ends
    previous_secret: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """One finished attempt and the state its delivery moves to."""

    job: Job
    attempt: Attempt
    status: DeliveryStatus
    next_attempt_at: datetime | None
    schedule_step: int
    #: the receiver asked for a pause (429/503 with Retry-After): hold the whole webhook
    pause_webhook_until: datetime | None = None
    #: disable the webhook at once, saying why (410 Gone)
    disable_reason: str | None = None


class Lane(enum.Enum):
    """Claims come in two lanes, each with its own slots: first attempts never queue behind
    retries."""

    FIRST = "first"  #: deliveries never attempted
    RETRY = "retry"  #: deliveries attempted before


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookAlert:
    """Something an operator wants to hear about a webhook, from recording attempts."""

    tenant_id: str
    webhook_id: str
    name: str
    url: str
    #: "disabled" or "failing"
    kind: str
    reason: str
    consecutive_failures: int
    failing_since: datetime | None


# -- the web UI ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """A signed-in browser; the cookie holds a token, the store only its hash."""

    token_hash: str
    tenant_id: str
    csrf_token: str = field(repr=False)
    expires_at: datetime
    #: opened by a portal link: this tenant's Settings → Webhooks and nothing else
    portal: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSummary:
    """How a webhook has been doing: its last delivery and the last day's outcomes."""

    last_status: DeliveryStatus | None
    last_status_code: int | None
    last_at: datetime | None
    succeeded: int
    failed: int

    @property
    def success_rate(self) -> float | None:
        """Share of finished attempts that succeeded in the window; None without any."""
        finished = self.succeeded + self.failed
        return None if finished == 0 else self.succeeded / finished


@dataclass(frozen=True, slots=True, kw_only=True)
class Inbox:
    """A built-in request catcher: a URL to point a webhook at, inside hookline."""

    id: str
    tenant_id: str
    name: str
    token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class InboxRequest:
    id: str
    inbox_id: str
    received_at: datetime
    headers: dict[str, str]
    body: bytes


# -- tenants and keys ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    id: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiKey:
    """A stored API key: only its hash is kept, never the key."""

    id: str
    tenant_id: str
    name: str
    #: an admin key acts on any tenant (X-Hookline-Tenant) and manages tenants
    is_admin: bool
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Principal:
    """Who a request acts as: a tenant, with or without the admin's powers."""

    tenant_id: str
    is_admin: bool
    key_id: str | None
