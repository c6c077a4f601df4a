"""The REST routes of /api/v1: thin translations between HTTP and the service."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from ..errors import Forbidden, InvalidInput, PayloadTooLarge, StoreUnavailable
from ..models import DeliveryFilter, DeliveryStatus, Principal
from ..service import UNSET, Service
from . import schemas as s


def service(request: Request) -> Service:
    runtime = request.app.state.runtime
    return runtime.service  # type: ignore[no-any-return]


async def principal(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <api key>")] = None,
    x_hookline_tenant: Annotated[
        str | None, Header(description="Admin keys only: act for this tenant.")
    ] = None,
) -> Principal:
    key = None
    if authorization and authorization[:7].lower() == "bearer ":
        key = authorization[7:].strip()
    return await service(request).authenticate(key, x_hookline_tenant)


async def tenant(who: Annotated[Principal, Depends(principal)]) -> str:
    return who.tenant_id


async def admin(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.is_admin:
        raise Forbidden("this needs an admin API key")
    return who


async def _service_dependency(request: Request) -> Service:
    return service(request)  # async: a plain function dependency would run on a thread


ServiceDep = Annotated[Service, Depends(_service_dependency)]
TenantDep = Annotated[str, Depends(tenant)]
AdminDep = Annotated[Principal, Depends(admin)]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    code: {"model": s.Problem} for code in (400, 401, 404, 409, 413, 422, 503)
}

router = APIRouter(responses=_PROBLEMS)
v1 = APIRouter(prefix="/api/v1")


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status, headers, media_type="application/json")


def _page_json(page: Any, render: Any) -> Response:
    return _json({"data": [render(item) for item in page.items], "next_cursor": page.next_cursor})


@router.get("/healthz", tags=["health"])
async def healthz() -> dict[str, str]:
    """Alive: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", tags=["health"])
async def readyz(request: Request) -> Response:
    """Ready: the database answers, and this process's dispatcher runs (if it has one)."""
    runtime = request.app.state.runtime
    checks = {"database": "ok", "dispatcher": "off"}
    try:
        await runtime.service.queue_stats()
    except StoreUnavailable as exc:
        checks["database"] = exc.detail
    if runtime.dispatcher is not None:
        checks["dispatcher"] = "running" if runtime.dispatching else "stopped"
    ready = checks["database"] == "ok" and checks["dispatcher"] != "stopped"
    return _json({"status": "ready" if ready else "not ready", **checks}, 200 if ready else 503)


@router.get("/metrics", tags=["health"], response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus text: events, delivery outcomes, attempt durations, the due queue."""
    runtime = request.app.state.runtime
    svc: Service = runtime.service
    in_flight = runtime.dispatcher.in_flight if runtime.dispatcher is not None else 0
    try:
        svc.metrics.observe_queue(await svc.queue_stats(), svc.clock(), in_flight)
    except StoreUnavailable:
        pass  # counters still say what this process did; the queue gauges keep their last value
    return Response(svc.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


# -- topics ------------------------------------------------------------------------------------


@v1.get("/topics", response_model=s.TopicList, tags=["topics"])
async def list_topics(svc: ServiceDep, _: TenantDep) -> Response:
    return _json({"data": [s.topic_json(t) for t in svc.topics()], "next_cursor": None})


# -- webhooks ----------------------------------------------------------------------------------


@v1.post("/webhooks", status_code=201, response_model=s.WebhookOut, tags=["webhooks"])
async def create_webhook(body: s.WebhookCreate, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    saved = await svc.create_webhook(
        tenant_id,
        name=body.name,
        url=body.url,
        topics=body.topics,
        secret=body.secret,
        enabled=body.enabled,
        max_in_flight=body.max_in_flight,
        rate_limit=body.rate_limit,
        ordered=body.ordered,
    )
    return _json(s.webhook_json(saved.webhook, saved.generated_secret), 201)


@v1.get("/webhooks", response_model=s.WebhookList, tags=["webhooks"])
async def list_webhooks(
    svc: ServiceDep,
    tenant_id: TenantDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    return _page_json(await svc.list_webhooks(tenant_id, cursor, limit), s.webhook_json)


@v1.get("/webhooks/{webhook_id}", response_model=s.WebhookOut, tags=["webhooks"])
async def get_webhook(webhook_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    return _json(s.webhook_json(await svc.get_webhook(tenant_id, webhook_id)))


@v1.patch("/webhooks/{webhook_id}", response_model=s.WebhookOut, tags=["webhooks"])
async def update_webhook(
    webhook_id: str, body: s.WebhookUpdate, svc: ServiceDep, tenant_id: TenantDep
) -> Response:
    given = body.model_fields_set
    changes = {
        name: getattr(body, name) if name in given else UNSET
        for name in s.WebhookUpdate.model_fields
    }
    saved = await svc.update_webhook(tenant_id, webhook_id, **changes)
    return _json(s.webhook_json(saved.webhook, saved.generated_secret))


@v1.delete("/webhooks/{webhook_id}", status_code=204, tags=["webhooks"])
async def delete_webhook(webhook_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    await svc.delete_webhook(tenant_id, webhook_id)
    return Response(status_code=204)


@v1.post(
    "/webhooks/{webhook_id}/test", status_code=202, response_model=s.TestSentOut, tags=["webhooks"]
)
async def send_test(
    webhook_id: str, svc: ServiceDep, tenant_id: TenantDep, body: s.TestRequest | None = None
) -> Response:
    sent = await svc.send_test(tenant_id, webhook_id, body.topic if body else None)
    return _json({"event_id": sent.event_id, "delivery_id": sent.delivery_id}, 202)


@v1.post("/webhooks/{webhook_id}/rotate-secret", response_model=s.WebhookOut, tags=["webhooks"])
async def rotate_secret(
    webhook_id: str,
    svc: ServiceDep,
    tenant_id: TenantDep,
    body: s.RotateSecretRequest | None = None,
) -> Response:
    """A new secret now; the old one keeps signing beside it during the overlap."""
    body = body or s.RotateSecretRequest()
    overlap = body.overlap
    if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int | float)):
        raise InvalidInput("overlap", "a number of seconds")
    saved = await svc.rotate_secret(tenant_id, webhook_id, body.secret, overlap)
    return _json(s.webhook_json(saved.webhook, saved.generated_secret))


@v1.post(
    "/webhooks/{webhook_id}/replay",
    status_code=202,
    response_model=s.ReplayAccepted,
    tags=["webhooks"],
)
async def replay(
    webhook_id: str, svc: ServiceDep, tenant_id: TenantDep, body: s.ReplayRequest | None = None
) -> Response:
    """Send again, at a bounded rate, the deliveries that did not arrive (or all of them)."""
    body = body or s.ReplayRequest()
    count = await svc.replay(
        tenant_id,
        webhook_id,
        since=_utc(body.since),
        until=_utc(body.until),
        status=body.status,
    )
    return _json({"replayed": count}, 202)


# -- tenants and keys --------------------------------------------------------------------------


@v1.post("/tenants", status_code=201, response_model=s.TenantOut, tags=["tenants"])
async def create_tenant(body: s.TenantCreate, svc: ServiceDep, _: AdminDep) -> Response:
    """Admin only. A new tenant: its own webhooks, events and deliveries, seen by no other."""
    return _json(s.tenant_json(await svc.create_tenant(body.name)), 201)


@v1.get("/tenants", response_model=s.TenantList, tags=["tenants"])
async def list_tenants(svc: ServiceDep, _: AdminDep) -> Response:
    tenants = await svc.list_tenants()
    return _json({"data": [s.tenant_json(t) for t in tenants], "next_cursor": None})


@v1.post(
    "/tenants/{tenant_id}/api-keys",
    status_code=201,
    response_model=s.ApiKeyCreated,
    tags=["tenants"],
)
async def create_tenant_key(
    tenant_id: str, svc: ServiceDep, _: AdminDep, body: s.ApiKeyCreate | None = None
) -> Response:
    """Admin only. A key that acts for this tenant alone; the key is shown this once."""
    created, key = await svc.create_api_key(tenant_id, body.name if body else "")
    return _json({"id": created.id, "key": key, "created_at": s.iso(created.created_at)}, 201)


@v1.post(
    "/tenants/{tenant_id}/portal-links",
    status_code=201,
    response_model=s.PortalLinkOut,
    tags=["tenants"],
)
async def create_portal_link(
    tenant_id: str, svc: ServiceDep, _: AdminDep, body: s.PortalLinkRequest | None = None
) -> Response:
    """Admin only. A signed, expiring link to this tenant's Settings → Webhooks, to embed in
    the operator's own product (framing is allowed for HOOKLINE_PORTAL_ORIGINS only)."""
    body = body or s.PortalLinkRequest()
    url, expires_at = await svc.sessions.portal_link(tenant_id, body.expires_in)
    return _json({"url": url, "expires_at": s.iso(expires_at)}, 201)


@v1.get("/api-keys", response_model=s.ApiKeyList, tags=["tenants"])
async def list_keys(svc: ServiceDep, tenant_id: TenantDep) -> Response:
    """The acting tenant's keys (never the keys themselves), with their last use."""
    keys = await svc.list_api_keys(tenant_id)
    return _json({"data": [s.api_key_json(k) for k in keys], "next_cursor": None})


@v1.delete("/api-keys/{key_id}", status_code=204, tags=["tenants"])
async def revoke_key(key_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    await svc.revoke_api_key(tenant_id, key_id)
    return Response(status_code=204)


# -- events ------------------------------------------------------------------------------------


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"the body is {declared} bytes; the limit is {limit}")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


@v1.post(
    "/events",
    status_code=202,
    response_model=s.EventAccepted,
    tags=["events"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": s.EventIn.model_json_schema()}},
        }
    },
)
async def publish_event(
    request: Request,
    svc: ServiceDep,
    tenant_id: TenantDep,
    who: Annotated[Principal, Depends(principal)],
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    """Store the event durably and fan it out; the body is sent to receivers byte for byte."""
    return await _publish(request, svc, who, idempotency_key)


async def publish_event_lean(request: Request) -> Response:
    """``POST /api/v1/events`` as the app serves it: the same operation as ``publish_event``
    (which documents it), without FastAPI's dependency resolution, which cost a third of the
    CPU of a publish. The hottest route of all is registered ahead of the documented one."""
    headers = request.headers
    svc = service(request)
    who = await principal(request, headers.get("authorization"), headers.get("x-hookline-tenant"))
    return await _publish(request, svc, who, headers.get("idempotency-key"))


async def _publish(
    request: Request, svc: Service, who: Principal, idempotency_key: str | None
) -> Response:
    body = await _read_body(request, svc.settings.max_payload_bytes)
    stored = await svc.publish(who.tenant_id, body, idempotency_key, rate_key=who.key_id or "admin")
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return _json(s.event_accepted_json(stored.event), 202, headers)


@v1.get("/events/{event_id}", response_model=s.EventOut, tags=["events"])
async def get_event(event_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    return _json(s.event_json(await svc.get_event(tenant_id, event_id)))


# -- deliveries --------------------------------------------------------------------------------


def _utc(moment: datetime | None) -> datetime | None:
    """Times without a zone are UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _status(value: str | None) -> DeliveryStatus | None:
    if value is None:
        return None
    try:
        return DeliveryStatus(value)
    except ValueError:
        valid = ", ".join(status.value for status in DeliveryStatus)
        raise InvalidInput("status", f"one of {valid}") from None


@v1.get("/deliveries", response_model=s.DeliveryList, tags=["deliveries"])
async def list_deliveries(
    svc: ServiceDep,
    tenant_id: TenantDep,
    webhook_id: str | None = None,
    status: str | None = None,
    topic: str | None = None,
    event_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    query = DeliveryFilter(
        tenant_id=tenant_id,
        webhook_id=webhook_id,
        status=_status(status),
        topic=topic,
        event_id=event_id,
        since=_utc(since),
        until=_utc(until),
    )
    return _page_json(await svc.list_deliveries(query, cursor, limit), s.delivery_json)


@v1.get("/deliveries/{delivery_id}", response_model=s.DeliveryDetailOut, tags=["deliveries"])
async def get_delivery(delivery_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    return _json(s.delivery_detail_json(await svc.get_delivery(tenant_id, delivery_id)))


@v1.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=s.DeliveryOut,
    tags=["deliveries"],
)
async def redeliver(delivery_id: str, svc: ServiceDep, tenant_id: TenantDep) -> Response:
    return _json(s.delivery_json(await svc.redeliver(tenant_id, delivery_id)), 202)


router.include_router(v1)
