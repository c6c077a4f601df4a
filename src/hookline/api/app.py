"""The ASGI application: lifespan, authentication, and errors as ``{"code", "detail"}``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from ..__about__ import __version__
from ..config import Settings
from ..errors import (
    Conflict,
    HooklineError,
    InvalidInput,
    InvalidJSON,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
)
from ..runtime import Runtime, first_key_notice
from ..service import Clock, utcnow
from .routes import router

_STATUS: dict[type[HooklineError], int] = {
    InvalidInput: 422,
    InvalidJSON: 400,
    PayloadTooLarge: 413,
    Unauthorized: 401,
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


async def _hookline_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HooklineError)
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInput):
        extra["errors"] = [{"field": exc.field, "message": exc.message}]
    return problem(_status_for(exc), exc.code, exc.detail, **extra)


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
    codes = {404: "not_found", 405: "method_not_allowed"}
    return problem(exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail))


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
    app.include_router(router)

    @app.get("/", include_in_schema=False)
    async def root() -> Response:
        return RedirectResponse("/docs")

    return app
