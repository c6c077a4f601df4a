"""Python clients for the hookline API: ``Client`` (blocking) and ``AsyncClient``.

    import hookline

    with hookline.Client("http://127.0.0.1:8000", api_key="hk_...") as client:
        client.publish("employee_create", {"id": 130333, "attributes": {...}})

Both expose the same methods; the async ones are awaited. Responses are the API's JSON as
dicts; an error answer raises ``ClientError`` with its status, ``code`` and ``detail``.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Generic, TypeVar

import httpx
import orjson

from .__about__ import __version__

R = TypeVar("R")
JSON = dict[str, Any]


class ClientError(Exception):
    """The hookline API answered with an error."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail


def _check(response: httpx.Response) -> JSON:
    if response.status_code >= 400:
        try:
            problem = response.json()
            code, detail = problem["code"], problem["detail"]
        except (ValueError, KeyError, TypeError):
            code, detail = "http_error", response.text[:500]
        raise ClientError(response.status_code, code, detail)
    if response.status_code == 204 or not response.content:
        return {}
    result: JSON = orjson.loads(response.content)
    return result


def _encode(
    json: Any, headers: dict[str, str] | None
) -> tuple[bytes | None, dict[str, str] | None]:
    if json is None:
        return None, headers
    return orjson.dumps(json), {**(headers or {}), "Content-Type": "application/json"}


def _params(**values: Any) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class _Endpoints(Generic[R]):
    """Every API call, once; ``_call`` is blocking or async depending on the subclass."""

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> R:
        raise NotImplementedError

    # events
    def publish(self, action: str, data: Any, *, idempotency_key: str | None = None) -> R:
        """Publish an event; answered once it is stored durably."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"action": action, "data": data}
        return self._call("POST", "/api/v1/events", json=body, headers=headers)

    def get_event(self, event_id: str) -> R:
        return self._call("GET", f"/api/v1/events/{event_id}")

    # topics
    def list_topics(self) -> R:
        return self._call("GET", "/api/v1/topics")

    # webhooks
    def create_webhook(
        self,
        name: str,
        url: str,
        topics: list[str],
        *,
        secret: str | None = None,
        enabled: bool = True,
        max_in_flight: int | None = None,
        rate_limit: float | None = None,
        ordered: bool = False,
    ) -> R:
        """Create a webhook; ``secret="generate"`` returns a new secret once, in ``secret``."""
        body = {
            "name": name,
            "url": url,
            "topics": topics,
            "secret": secret,
            "enabled": enabled,
            "max_in_flight": max_in_flight,
            "rate_limit": rate_limit,
            "ordered": ordered,
        }
        return self._call("POST", "/api/v1/webhooks", json=body)

    def replay(
        self,
        webhook_id: str,
        *,
        since: str | None = None,
        until: str | None = None,
        status: str = "failed",
    ) -> R:
        """Send again what failed or was skipped ("failed"), or everything ("all")."""
        body = _params(since=since, until=until, status=status)
        return self._call("POST", f"/api/v1/webhooks/{webhook_id}/replay", json=body)

    def list_webhooks(self, *, cursor: str | None = None, limit: int | None = None) -> R:
        return self._call("GET", "/api/v1/webhooks", params=_params(cursor=cursor, limit=limit))

    def get_webhook(self, webhook_id: str) -> R:
        return self._call("GET", f"/api/v1/webhooks/{webhook_id}")

    def update_webhook(self, webhook_id: str, **changes: Any) -> R:
        """Change any of name, url, topics, secret (None removes it), enabled."""
        return self._call("PATCH", f"/api/v1/webhooks/{webhook_id}", json=changes)

    def delete_webhook(self, webhook_id: str) -> R:
        return self._call("DELETE", f"/api/v1/webhooks/{webhook_id}")

    def send_test(self, webhook_id: str, topic: str | None = None) -> R:
        return self._call("POST", f"/api/v1/webhooks/{webhook_id}/test", json=_params(topic=topic))

    # deliveries
    def list_deliveries(
        self,
        *,
        webhook_id: str | None = None,
        status: str | None = None,
        topic: str | None = None,
        event_id: str | None = None,
        since: str | None = None,
        until: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
    ) -> R:
        params = _params(
            webhook_id=webhook_id,
            status=status,
            topic=topic,
            event_id=event_id,
            since=since,
            until=until,
            cursor=cursor,
            limit=limit,
        )
        return self._call("GET", "/api/v1/deliveries", params=params)

    def get_delivery(self, delivery_id: str) -> R:
        return self._call("GET", f"/api/v1/deliveries/{delivery_id}")

    def redeliver(self, delivery_id: str) -> R:
        return self._call("POST", f"/api/v1/deliveries/{delivery_id}/redeliver")


def _headers(api_key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}", "User-Agent": f"hookline-python/{__version__}"}


class Client(_Endpoints[JSON]):
    """Blocking client; use as a context manager or call ``close()``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url, headers=_headers(api_key), timeout=timeout)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> JSON:
        content, headers = _encode(json, headers)
        return _check(
            self._http.request(method, path, content=content, params=params, headers=headers)
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Endpoints[Awaitable[JSON]]):
    """Asynchronous client; use with ``async with`` or await ``aclose()``."""

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=_headers(api_key), timeout=timeout
        )

    async def _request(
        self,
        method: str,
        path: str,
        json: Any,
        params: dict[str, Any] | None,
        headers: dict[str, str] | None,
    ) -> JSON:
        content, headers = _encode(json, headers)
        response = await self._http.request(
            method, path, content=content, params=params, headers=headers
        )
        return _check(response)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Awaitable[JSON]:
        return self._request(method, path, json, params, headers)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
