"""The ASGI application: lifespan, authentication, and errors as ``{"code", "detail"}``."""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import ui
from ..__about__ import __version__
from ..config import Settings
from ..errors import (
    Conflict,
    Forbidden,
    HooklineError,
    InvalidInput,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    StoreUnavailable,
    Unauthorized,
)
from ..runtime import Runtime, first_key_notice
from ..service import Clock, utcnow
from ..ui import SignInRequired
from ..ui.routes import render_error
from .routes import publish_event_lean, router

_STATUS: dict[type[HooklineError], int] = {
    InvalidInput: 422,
    InvalidJSON: 400,
    PayloadTooLarge: 413,
    Unauthorized: 401,
    Forbidden: 403,
    RateLimited: 429,
    NotFound: 404,
    Conflict: 409,
    StoreUnavailable: 503,
}


class OrjsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def problem(status: int, code: str, detail: str, **extra: Any) -> OrjsonResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return OrjsonResponse({"code": code, "detail": detail, **extra}, status, headers=headers)


def _status_for(exc: HooklineError) -> int:
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


def _wants_json(request: Request) -> bool:
    """API routes answer JSON; the UI's pages answer HTML."""
    path = request.url.path
    return path.startswith(("/api/", "/inbox/", "/healthz", "/readyz", "/metrics", "/openapi"))


async def _hookline_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HooklineError)
    if not _wants_json(request):
        return render_error(request, _status_for(exc), exc.detail)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["errors"] = [{"field": exc.field, "message": exc.message}]
    response = problem(_status_for(exc), exc.code, exc.detail, **extra)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query")]
        errors.append({"field": ".".join(location) or "body", "message": error.get("msg", "")})
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, "invalid_input", detail, errors=errors)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not _wants_json(request) and exc.status_code == 404:
        return render_error(request, 404, "There is no page at this address.")
    codes = {404: "not_found", 405: "method_not_allowed"}
    return problem(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))


class HeaderLimit:
    """Refuse requests whose headers are larger than the limit, before anything reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > self.limit:
                response = problem(
                    431,
                    "headers_too_large",
                    f"the request's headers are {size} bytes; the limit is {self.limit}",
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(settings: Settings, *, dispatch: bool = True, clock: Clock = utcnow) -> FastAPI:
    """The hookline application; with ``dispatch`` it also runs the dispatcher in-process."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings, dispatch=dispatch, clock=clock)
        app.state.runtime = runtime
        generated = await runtime.start()
        if generated:
            print(first_key_notice(generated), file=sys.stderr, flush=True)
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="hookline",
        version=__version__,
        summary="Self-hosted webhook delivery: signed, retried, at-least-once.",
        lifespan=lifespan,
        default_response_class=OrjsonResponse,
    )
    app.add_exception_handler(HooklineError, _hookline_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_middleware(SecurityHeaders, portal_origins=settings.portal_origins)
    app.add_middleware(HeaderLimit, limit=settings.max_header_bytes)
    # ahead of the documented route of the same operation (see publish_event_lean)
    app.router.add_route(
        "/api/v1/events", publish_event_lean, methods=["POST"], include_in_schema=False
    )
    app.include_router(router)
    app.include_router(ui.router)
    app.mount("/static", ui.static_files, name="static")
    return app


async def _sign_in_first(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    return RedirectResponse(f"/sign-in?next={quote(exc.path)}", status_code=303)


_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; "
    "frame-ancestors {ancestors}"
)


class SecurityHeaders:
    """A strict Content-Security-Policy on hookline's pages; only portal pages may be framed,
    and only by the origins the operator listed. Plain ASGI: Starlette's ``BaseHTTPMiddleware``
    cost the publish path a task and a memory stream per request."""

    def __init__(self, app: ASGIApp, portal_origins: tuple[str, ...]) -> None:
        self.app = app
        framed_by = " ".join(portal_origins) or "'none'"
        # both policies made once, not on every response
        self.portal_policy = _POLICY.format(ancestors=framed_by)
        self.portal_framable = framed_by != "'none'"
        self.policy = _POLICY.format(ancestors="'none'")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(raw=list(message.get("headers", ())))
                self._add(headers, scope)
                message["headers"] = headers.raw
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _add(self, headers: MutableHeaders, scope: Scope) -> None:
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        # Swagger UI at /docs loads its own assets: the strict policy is for hookline's pages
        if scope["path"].startswith(("/docs", "/redoc")):
            return
        portal = scope.get("state", {}).get("portal", False)
        headers.setdefault("Content-Security-Policy", self.portal_policy if portal else self.policy)
        if not (portal and self.portal_framable):
            headers.setdefault("X-Frame-Options", "DENY")
