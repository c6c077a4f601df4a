"""Portal links: the operator embeds one tenant's Settings → Webhooks in its own product."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hookline.api import create_app
from hookline.config import Settings

from ..conftest import API_KEY
from ..live import LiveServer

OFFSET = [timedelta(0)]


def clock() -> datetime:
    return datetime.now(UTC) + OFFSET[0]


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    OFFSET[0] = timedelta(0)
    portal = settings.with_(portal_origins=("https://hr.example.com",))
    with LiveServer(create_app(portal, clock=clock)) as live:
        yield live.url


def test_a_portal_link_opens_one_tenants_webhooks_and_nothing_else(server: str):
    with (
        httpx.Client(base_url=server, headers={"Authorization": f"Bearer {API_KEY}"}) as admin,
        httpx.Client(base_url=server) as browser,
    ):
        _portal_story(admin, browser)


def _portal_story(admin: httpx.Client, browser: httpx.Client) -> None:
    tenant = admin.post("/api/v1/tenants", json={"name": "Acme"}).json()
    as_acme = {"X-Hookline-Tenant": tenant["id"]}
    body = {"url": "https://example.com/h", "topics": ["employee_create"]}
    admin.post("/api/v1/webhooks", json={**body, "name": "Acme's hook"}, headers=as_acme)
    admin.post("/api/v1/webhooks", json={**body, "name": "Operator's own hook"})
    made = admin.post(f"/api/v1/tenants/{tenant['id']}/portal-links", json={"expires_in": 600})
    assert made.status_code == 201 and set(made.json()) == {"url", "expires_at"}
    link = made.json()["url"]
    assert link.startswith("http://127.0.0.1:8000/portal/")  # the configured public URL
    path = link.removeprefix("http://127.0.0.1:8000")
    opened = browser.get(path)
    assert opened.status_code == 303 and opened.headers["location"] == "/settings/webhooks"
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    page = browser.get("/settings/webhooks")
    assert page.status_code == 200
    assert "Acme&#39;s hook" in page.text or "Acme's hook" in page.text
    assert "Operator" not in page.text
    assert 'href="/topics"' not in page.text  # the navigation offers nothing else
    assert "frame-ancestors https://hr.example.com" in page.headers["content-security-policy"]
    assert "x-frame-options" not in page.headers
    for elsewhere in ("/topics", "/inboxes", "/verifying", "/settings/../topics"):
        assert browser.get(elsewhere).status_code == 404, elsewhere
    # an ordinary signed-in page may not be framed at all
    assert "frame-ancestors 'none'" in browser.get("/sign-in").headers["content-security-policy"]


def test_forged_expired_and_unauthorised_links_open_nothing(server: str):
    admin = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {API_KEY}"})
    tenant = admin.post("/api/v1/tenants", json={"name": "Acme"}).json()
    link = admin.post(f"/api/v1/tenants/{tenant['id']}/portal-links", json={}).json()["url"]
    token = link.rsplit("/", 1)[1]
    browser = httpx.Client(base_url=server)
    body, _, signature = token.partition(".")
    forged = f"{body}.{signature[:-2]}{'AA' if not signature.endswith('AA') else 'BB'}"
    assert browser.get(f"/portal/{forged}").status_code == 404
    assert browser.get("/portal/not-a-token").status_code == 404
    OFFSET[0] = timedelta(hours=2)  # the default link lasts an hour
    expired = browser.get(f"/portal/{token}")
    assert expired.status_code == 404 and "expired" in expired.text
    key = admin.post(f"/api/v1/tenants/{tenant['id']}/api-keys", json={}).json()["key"]
    tenant_key = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {key}"})
    refused = tenant_key.post(f"/api/v1/tenants/{tenant['id']}/portal-links", json={})
    assert refused.status_code == 403
    too_long = admin.post(
        f"/api/v1/tenants/{tenant['id']}/portal-links", json={"expires_in": 30 * 86400}
    )
    assert too_long.status_code == 422
    for client in (admin, browser, tenant_key):
        client.close()
