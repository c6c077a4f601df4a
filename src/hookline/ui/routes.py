"""The pages. Each handler reads a form or a query, calls the service, and renders a template;
no use case lives here."""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData

from ..errors import HooklineError, InvalidInput, NotFound, Unauthorized
from ..models import DeliveryFilter, DeliveryStatus, Session
from ..service import UNSET, ChartBucket, Service
from ..signing import generate_secret
from ..troubleshooting import explain

HERE = Path(__file__).parent
SESSION_COOKIE = "hookline_session"
SIGN_IN_COOKIE = "hookline_sign_in"
PAGE_SIZE = 25

templates = Jinja2Templates(directory=HERE / "templates")  # autoescapes .html
templates.env.filters["when"] = lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S UTC")
static_files = StaticFiles(directory=HERE / "static")
router = APIRouter(include_in_schema=False)

NOTICES = {
    "created": "Webhook saved. Send a test event to try it.",
    "saved": "Changes saved.",
    "deleted": "Webhook deleted.",
    "enabled": "Webhook enabled: held deliveries go out now.",
    "disabled": "Webhook disabled: new deliveries wait until it is enabled again.",
    "test_sent": "Test event sent. It appears at the top of the history below.",
    "redelivered": "Redelivery queued: a new attempt is being made now.",
    "inbox_deleted": "Inbox deleted.",
    "replayed": "Replay queued: the deliveries go out again at a bounded rate.",
}


class SignInRequired(Exception):
    """The page needs a signed-in browser."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class CsrfRejected(HooklineError):
    """This form has expired or did not come from hookline. Reload the page and try again."""

    code = "csrf_rejected"


def _service(request: Request) -> Service:
    return request.app.state.runtime.service  # type: ignore[no-any-return]


#: where a portal session may go: one tenant's Settings → Webhooks, and out
PORTAL_PATHS = ("/settings/webhooks", "/deliveries/", "/sign-out")


async def _session(request: Request) -> Session:
    session = await _service(request).sessions.find(request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise SignInRequired(request.url.path)
    if session.portal:
        request.state.portal = True  # the security headers allow the listed framing origins
        if not request.url.path.startswith(PORTAL_PATHS):
            raise NotFound("There is no page at this address.")
    return session


async def _service_dependency(request: Request) -> Service:
    return _service(request)  # async: a plain function dependency would run on a thread


ServiceDep = Annotated[Service, Depends(_service_dependency)]
SessionDep = Annotated[Session, Depends(_session)]


async def _form(request: Request, session: Session) -> FormData:
    form = await request.form()
    if not hmac.compare_digest(str(form.get("csrf_token", "")), session.csrf_token):
        raise CsrfRejected()
    return form


def _page(
    request: Request,
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    notice = NOTICES.get(request.query_params.get("done", ""))
    response: HTMLResponse = templates.TemplateResponse(
        request,
        template,
        {"session": session, "csrf": session.csrf_token if session else "", "notice": notice}
        | context,
        status_code=status,
    )
    return response


def _see_other(path: str, done: str | None = None) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={done}" if done else path, status_code=303)


def render_error(request: Request, status: int, message: str) -> HTMLResponse:
    response: HTMLResponse = templates.TemplateResponse(
        request,
        "error.html",
        {"session": None, "csrf": "", "notice": None, "status": status, "message": message},
        status_code=status,
    )
    return response


# -- signing in --------------------------------------------------------------------------------


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/settings/webhooks"


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = _page(request, "sign_in.html", None, sign_in_token=token, next=_safe_next(next))
    response.set_cookie(
        SIGN_IN_COOKIE, token, httponly=True, samesite="strict", secure=_https(request)
    )
    return response


@router.post("/sign-in")
async def sign_in(request: Request, svc: ServiceDep) -> Response:
    form = await request.form()
    target = _safe_next(str(form.get("next", "")))
    expected = request.cookies.get(SIGN_IN_COOKIE, "")
    if not expected or not hmac.compare_digest(str(form.get("sign_in_token", "")), expected):
        raise CsrfRejected()
    try:
        token, _ = await svc.sessions.sign_in(str(form.get("api_key", "")).strip())
    except Unauthorized:
        return _page(
            request,
            "sign_in.html",
            None,
            status=401,
            sign_in_token=expected,
            next=target,
            error="This API key is not valid. Use the admin key hookline printed on its first "
            "start, or the one set in HOOKLINE_API_KEY.",
        )
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(svc.settings.session_ttl),
        httponly=True,
        samesite="lax",
        secure=_https(request),
    )
    response.delete_cookie(SIGN_IN_COOKIE)
    return response


@router.get("/portal/{token}")
async def open_portal(request: Request, token: str, svc: ServiceDep) -> Response:
    """A portal link: a session confined to one tenant's Settings → Webhooks."""
    cookie, session = await svc.sessions.open_portal(token)
    request.state.portal = True
    response = RedirectResponse("/settings/webhooks", status_code=303)
    secure = _https(request)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int((session.expires_at - svc.clock()).total_seconds()),
        httponly=True,
        # inside another site's frame a cookie must be SameSite=None, which needs https
        samesite="none" if secure else "lax",
        secure=secure,
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    await _form(request, session)
    await svc.sessions.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


# -- Settings → Webhooks -----------------------------------------------------------------------


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/settings/webhooks", status_code=303)


@router.get("/settings/webhooks")
async def webhooks_page(
    request: Request, svc: ServiceDep, session: SessionDep, cursor: str | None = None
) -> Response:
    page = await svc.list_webhooks(session.tenant_id, cursor, PAGE_SIZE)
    summaries = await svc.webhook_summaries(session.tenant_id, list(page.items))
    return _page(request, "webhooks.html", session, page=page, summaries=summaries)


def _topic_groups(svc: Service) -> dict[str, list[Any]]:
    groups: dict[str, list[Any]] = {}
    for topic in svc.topics():
        groups.setdefault(topic.group, []).append(topic)
    return groups


def _webhook_form(
    request: Request,
    svc: Service,
    session: Session,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    webhook: Any = None,
    generated: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    return _page(
        request,
        "webhook_form.html",
        session,
        status=status,
        values=values,
        errors=errors or {},
        groups=_topic_groups(svc),
        webhook=webhook,
        generated=generated,
    )


def _number(text: str, parse: Any) -> Any:
    """A form's number, or the text itself for the service to refuse with a clear message."""
    try:
        return parse(text)
    except ValueError:
        return text


def _form_values(form: FormData) -> dict[str, Any]:
    rate = str(form.get("rate_limit", "")).strip()
    return {
        "name": str(form.get("name", "")),
        "url": str(form.get("url", "")),
        "secret": str(form.get("secret", "")),
        "topics": [str(topic) for topic in form.getlist("topics")],
        "enabled": form.get("enabled") == "on",
        "remove_secret": form.get("remove_secret") == "on",
        "max_in_flight": _number(str(form.get("max_in_flight", "8")).strip(), int),
        "rate_limit": _number(rate, float) if rate else None,
        "ordered": form.get("ordered") == "on",
    }


@router.get("/settings/webhooks/new")
async def new_webhook_page(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    values = {
        "name": "",
        "url": "",
        "secret": "",
        "topics": [],
        "enabled": True,
        "max_in_flight": svc.settings.max_in_flight,
        "rate_limit": None,
        "ordered": False,
    }
    return _webhook_form(request, svc, session, values=values)


@router.post("/settings/webhooks/new")
async def create_webhook(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    form = await _form(request, session)
    values = _form_values(form)
    if "generate" in form:
        values["secret"] = generate_secret()
        return _webhook_form(request, svc, session, values=values, generated=values["secret"])
    try:
        saved = await svc.create_webhook(
            session.tenant_id,
            name=values["name"],
            url=values["url"],
            topics=values["topics"],
            secret=values["secret"] or None,
            enabled=values["enabled"],
            max_in_flight=values["max_in_flight"],
            rate_limit=values["rate_limit"],
            ordered=values["ordered"],
        )
    except InvalidInput as exc:
        errors = {exc.field: exc.message}
        return _webhook_form(request, svc, session, values=values, errors=errors, status=422)
    return _see_other(f"/settings/webhooks/{saved.webhook.id}", "created")


@router.get("/settings/webhooks/{webhook_id}/edit")
async def edit_webhook_page(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    webhook = await svc.get_webhook(session.tenant_id, webhook_id)
    values = {
        "name": webhook.name,
        "url": webhook.url,
        "secret": "",
        "topics": list(webhook.topics),
        "enabled": webhook.enabled,
        "max_in_flight": webhook.max_in_flight,
        "rate_limit": webhook.rate_limit,
        "ordered": webhook.ordered,
    }
    return _webhook_form(request, svc, session, values=values, webhook=webhook)


@router.post("/settings/webhooks/{webhook_id}/edit")
async def update_webhook(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    webhook = await svc.get_webhook(session.tenant_id, webhook_id)
    form = await _form(request, session)
    values = _form_values(form)
    if "generate" in form:
        values["secret"] = generate_secret()
        return _webhook_form(
            request, svc, session, values=values, webhook=webhook, generated=values["secret"]
        )
    secret: Any = UNSET
    if values["remove_secret"]:
        secret = None
    elif values["secret"]:
        secret = values["secret"]
    try:
        await svc.update_webhook(
            session.tenant_id,
            webhook_id,
            name=values["name"],
            url=values["url"],
            topics=values["topics"],
            secret=secret,
            enabled=values["enabled"],
            max_in_flight=values["max_in_flight"],
            rate_limit=values["rate_limit"],
            ordered=values["ordered"],
        )
    except InvalidInput as exc:
        errors = {exc.field: exc.message}
        return _webhook_form(
            request, svc, session, values=values, errors=errors, webhook=webhook, status=422
        )
    return _see_other(f"/settings/webhooks/{webhook_id}", "saved")


@router.post("/settings/webhooks/{webhook_id}/enabled")
async def toggle_webhook(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    form = await _form(request, session)
    enabled = form.get("enabled") == "true"
    before = await svc.get_webhook(session.tenant_id, webhook_id)
    await svc.update_webhook(session.tenant_id, webhook_id, enabled=enabled)
    if enabled and form.get("replay") == "on":
        # what failed or was skipped since the trouble began
        began = before.failing_since or before.disabled_at
        await svc.replay(session.tenant_id, webhook_id, changed_since=began)
        return _see_other(f"/settings/webhooks/{webhook_id}", "replayed")
    return _see_other(f"/settings/webhooks/{webhook_id}", "enabled" if enabled else "disabled")


@router.post("/settings/webhooks/{webhook_id}/replay")
async def replay_webhook(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    form = await _form(request, session)
    await svc.replay(
        session.tenant_id,
        webhook_id,
        since=_when(str(form.get("since", ""))),
        until=_when(str(form.get("until", ""))),
        status=str(form.get("status", "failed")),
    )
    return _see_other(f"/settings/webhooks/{webhook_id}", "replayed")


@router.get("/settings/webhooks/{webhook_id}/delete")
async def delete_webhook_page(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    webhook = await svc.get_webhook(session.tenant_id, webhook_id)
    return _page(request, "webhook_delete.html", session, webhook=webhook)


@router.post("/settings/webhooks/{webhook_id}/delete")
async def delete_webhook(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    await _form(request, session)
    await svc.delete_webhook(session.tenant_id, webhook_id)
    return _see_other("/settings/webhooks", "deleted")


@router.post("/settings/webhooks/{webhook_id}/test")
async def send_test(
    request: Request, webhook_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    form = await _form(request, session)
    await svc.send_test(session.tenant_id, webhook_id, str(form.get("topic", "")) or None)
    return _see_other(f"/settings/webhooks/{webhook_id}", "test_sent")


def _when(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.get("/settings/webhooks/{webhook_id}")
async def webhook_page(
    request: Request,
    webhook_id: str,
    svc: ServiceDep,
    session: SessionDep,
    outcome: str = "",
    topic: str = "",
    since: str = "",
    until: str = "",
    cursor: str | None = None,
) -> Response:
    webhook = await svc.get_webhook(session.tenant_id, webhook_id)
    statuses = {status.value: status for status in DeliveryStatus}
    query = DeliveryFilter(
        tenant_id=session.tenant_id,
        webhook_id=webhook.id,
        status=statuses.get(outcome),
        topic=topic or None,
        since=_when(since),
        until=_when(until),
    )
    page = await svc.list_deliveries(query, cursor, PAGE_SIZE)
    chart = _chart(await svc.delivery_chart(session.tenant_id, webhook.id))
    filters = {"outcome": outcome, "topic": topic, "since": since, "until": until}
    more = "&".join(f"{k}={quote(v)}" for k, v in filters.items() if v)
    return _page(
        request,
        "webhook.html",
        session,
        webhook=webhook,
        page=page,
        chart=chart,
        filters=filters,
        filter_query=more,
        statuses=list(statuses),
        topics=svc.topics(),
        now=svc.clock(),
    )


_CHART_ORDER = ("succeeded", "failed", "pending", "delivering")
_BAR, _GAP, _HEIGHT = 10, 4, 60


def _chart(buckets: list[ChartBucket]) -> dict[str, Any]:
    """Stacked bars, one an hour, as SVG geometry (the template only draws them)."""
    tallest = max([sum(bucket.counts.values()) for bucket in buckets] + [1])
    bars = []
    for index, bucket in enumerate(buckets):
        top = float(_HEIGHT)
        for status in _CHART_ORDER:
            count = bucket.counts.get(status, 0)
            if not count:
                continue
            height = count / tallest * _HEIGHT
            top -= height
            bars.append(
                {
                    "status": status,
                    "x": index * (_BAR + _GAP),
                    "y": round(top, 2),
                    "width": _BAR,
                    "height": round(height, 2),
                    "title": f"{bucket.start:%H:00} UTC: {count} {status}",
                }
            )
    totals = {s: sum(b.counts.get(s, 0) for b in buckets) for s in _CHART_ORDER}
    waiting = totals["pending"] + totals["delivering"]
    return {
        "bars": bars,
        "width": len(buckets) * (_BAR + _GAP),
        "height": _HEIGHT,
        "summary": f"{totals['succeeded']} succeeded, {totals['failed']} failed, "
        f"{waiting} waiting in the last 24 hours",
    }


# -- deliveries --------------------------------------------------------------------------------


def _pretty(body: bytes | None) -> str:
    if body is None:
        return ""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return body.decode("utf-8", errors="replace")


@router.get("/deliveries/{delivery_id}")
async def delivery_page(
    request: Request, delivery_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    detail = await svc.get_delivery(session.tenant_id, delivery_id)
    webhook = await svc.get_webhook(session.tenant_id, detail.delivery.webhook_id)
    attempts = [
        {"attempt": a, "explanation": explain(a), "response_body": _pretty(a.response_body)}
        for a in reversed(detail.attempts)
    ]
    event = await svc.get_event(session.tenant_id, detail.delivery.event_id)
    return _page(
        request,
        "delivery.html",
        session,
        delivery=detail.delivery,
        webhook=webhook,
        attempts=attempts,
        request_body=_pretty(event.payload),
        latest=detail.attempts[-1] if detail.attempts else None,
    )


@router.post("/deliveries/{delivery_id}/redeliver")
async def redeliver(
    request: Request, delivery_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    await _form(request, session)
    await svc.redeliver(session.tenant_id, delivery_id)
    return _see_other(f"/deliveries/{delivery_id}", "redelivered")


# -- topics and help ---------------------------------------------------------------------------


@router.get("/topics")
async def topics_page(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    examples = {
        t.name: _pretty(orjson.dumps({"action": t.name, "data": t.example})) for t in svc.topics()
    }
    return _page(request, "topics.html", session, groups=_topic_groups(svc), examples=examples)


@router.get("/verifying")
async def verifying_page(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    return _page(request, "verifying.html", session, header=svc.settings.signature_header)


# -- test inboxes ------------------------------------------------------------------------------


@router.get("/inboxes")
async def inboxes_page(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    inboxes = await svc.inboxes.open_ones(session.tenant_id)
    urls = {inbox.id: svc.inboxes.url(inbox) for inbox in inboxes}
    return _page(request, "inboxes.html", session, inboxes=inboxes, urls=urls)


@router.post("/inboxes")
async def create_inbox(request: Request, svc: ServiceDep, session: SessionDep) -> Response:
    form = await _form(request, session)
    inbox = await svc.inboxes.create(session.tenant_id, str(form.get("name", "")))
    return _see_other(f"/inboxes/{inbox.id}")


async def _inbox_context(
    svc: Service, session: Session, inbox_id: str, secret: str = ""
) -> dict[str, Any]:
    inbox, requests = await svc.inboxes.get(session.tenant_id, inbox_id)
    return {
        "inbox": inbox,
        "url": svc.inboxes.url(inbox),
        "requests": [
            {
                "request": r,
                "body": _pretty(r.body),
                "check": svc.inboxes.check(r, secret) if secret else None,
            }
            for r in requests
        ],
        "secret_given": bool(secret),
        "keep": svc.settings.inbox_keep,
    }


@router.get("/inboxes/{inbox_id}")
async def inbox_page(
    request: Request, inbox_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    context = await _inbox_context(svc, session, inbox_id)
    return _page(request, "inbox.html", session, **context)


@router.get("/inboxes/{inbox_id}/requests")
async def inbox_requests_fragment(
    request: Request, inbox_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    context = await _inbox_context(svc, session, inbox_id)
    return _page(request, "_inbox_requests.html", session, **context)


@router.post("/inboxes/{inbox_id}")
async def check_inbox_signatures(
    request: Request, inbox_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    form = await _form(request, session)
    context = await _inbox_context(svc, session, inbox_id, str(form.get("secret", "")))
    return _page(request, "inbox.html", session, **context)


@router.post("/inboxes/{inbox_id}/delete")
async def delete_inbox(
    request: Request, inbox_id: str, svc: ServiceDep, session: SessionDep
) -> Response:
    await _form(request, session)
    await svc.inboxes.delete(session.tenant_id, inbox_id)
    return _see_other("/inboxes", "inbox_deleted")


@router.post("/inbox/{token}")
async def capture(request: Request, token: str, svc: ServiceDep) -> Response:
    """An inbox URL, reached over HTTP (deliveries from this hookline arrive in-process)."""
    limit = svc.settings.inbox_body_max
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return JSONResponse({"code": "payload_too_large", "detail": "too large"}, 413)
    if not await svc.inboxes.capture(token, dict(request.headers), body):
        raise NotFound("no such test inbox, or it has expired")
    return JSONResponse({"captured": True})
