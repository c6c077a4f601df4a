"""Tenants see nothing of each other, by any route."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from hookline.api import create_app
from hookline.config import Settings

from ..conftest import API_KEY
from ..live import LiveServer
from ..receiver import Receiver


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    with LiveServer(create_app(settings)) as live:
        yield live.url


_opened: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


def client(url: str, key: str, **headers: str) -> httpx.Client:
    opened = httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {key}", **headers}, timeout=10
    )
    _opened.append(opened)
    return opened


def test_two_tenants_cannot_see_or_reach_each_others_data(server: str, receiver: Receiver):
    admin = client(server, API_KEY)
    tenants = {}
    for name in ("Acme", "Globex"):
        created = admin.post("/api/v1/tenants", json={"name": name})
        assert created.status_code == 201 and set(created.json()) == {"id", "name", "created_at"}
        key = admin.post(f"/api/v1/tenants/{created.json()['id']}/api-keys", json={"name": "ci"})
        assert key.status_code == 201 and set(key.json()) == {"id", "key", "created_at"}
        tenants[name] = (created.json()["id"], client(server, key.json()["key"]))
    (acme_id, acme), (globex_id, globex) = tenants["Acme"], tenants["Globex"]
    body = {"name": "hr", "topics": ["employee_create"]}
    hook = acme.post("/api/v1/webhooks", json={**body, "url": receiver.url("/ok/acme")}).json()
    theirs = globex.post("/api/v1/webhooks", json={**body, "url": receiver.url("/ok/globex")})
    assert theirs.status_code == 201
    event = acme.post("/api/v1/events", json={"action": "employee_create", "data": {}}).json()
    assert event["deliveries"] == 1  # Globex's webhook on the same topic is not Acme's
    receiver.wait_for(1, "/ok/acme")
    [delivery] = acme.get("/api/v1/deliveries").json()["data"]
    assert receiver.received("/ok/globex") == []

    for method, path, payload in [
        ("GET", f"/api/v1/webhooks/{hook['id']}", None),
        ("PATCH", f"/api/v1/webhooks/{hook['id']}", {"name": "taken"}),
        ("DELETE", f"/api/v1/webhooks/{hook['id']}", None),
        ("POST", f"/api/v1/webhooks/{hook['id']}/test", {}),
        ("POST", f"/api/v1/webhooks/{hook['id']}/replay", {}),
        ("POST", f"/api/v1/webhooks/{hook['id']}/rotate-secret", {}),
        ("GET", f"/api/v1/events/{event['id']}", None),
        ("GET", f"/api/v1/deliveries/{delivery['id']}", None),
        ("POST", f"/api/v1/deliveries/{delivery['id']}/redeliver", None),
        ("GET", f"/api/v1/deliveries?webhook_id={hook['id']}", None),
        ("POST", f"/api/v1/tenants/{acme_id}/api-keys", {}),
        ("POST", f"/api/v1/tenants/{acme_id}/portal-links", {}),
    ]:
        answer = globex.request(method, path, json=payload)
        expected = 403 if "/tenants/" in path else 404
        assert answer.status_code == expected, (method, path, answer.text)
    assert [w["id"] for w in globex.get("/api/v1/webhooks").json()["data"]] == [theirs.json()["id"]]
    assert globex.get("/api/v1/deliveries").json()["data"] == []
    assert acme.get(f"/api/v1/webhooks/{hook['id']}").json()["name"] == "hr"  # untouched

    # tenant keys manage no tenants and cannot borrow another's
    assert globex.get("/api/v1/tenants").status_code == 403
    assert globex.post("/api/v1/tenants", json={"name": "x"}).status_code == 403
    borrowed = client(server, globex.headers["Authorization"][7:], **{"X-Hookline-Tenant": acme_id})
    assert borrowed.get("/api/v1/webhooks").status_code == 404
    # the admin acts for a tenant by naming it
    as_acme = client(server, API_KEY, **{"X-Hookline-Tenant": acme_id})
    assert [w["id"] for w in as_acme.get("/api/v1/webhooks").json()["data"]] == [hook["id"]]
    nobody = client(server, API_KEY, **{"X-Hookline-Tenant": "ten_nobody"})
    assert nobody.get("/api/v1/webhooks").status_code == 404
    listed = admin.get("/api/v1/tenants").json()["data"]
    assert {t["name"] for t in listed} >= {"Acme", "Globex", "Default"}
    assert globex_id in {t["id"] for t in listed}


def test_keys_are_listed_with_their_last_use_and_can_be_revoked(server: str):
    admin = client(server, API_KEY)
    tenant = admin.post("/api/v1/tenants", json={"name": "Initech"}).json()
    made = admin.post(f"/api/v1/tenants/{tenant['id']}/api-keys", json={"name": "deploy"}).json()
    own = client(server, made["key"])
    assert own.get("/api/v1/webhooks").status_code == 200
    [listed] = own.get("/api/v1/api-keys").json()["data"]
    assert listed["id"] == made["id"] and listed["name"] == "deploy"
    assert listed["last_used_at"] is not None and listed["revoked_at"] is None
    assert "key" not in listed and made["key"] not in own.get("/api/v1/api-keys").text
    assert own.delete(f"/api/v1/api-keys/{made['id']}").status_code == 204
    refused = own.get("/api/v1/webhooks")
    assert refused.status_code == 401 and refused.json()["code"] == "unauthorized"
    assert admin.delete(f"/api/v1/api-keys/{made['id']}").status_code == 404  # not Default's
    bad = admin.post("/api/v1/tenants", json={"name": ""})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "name"
    assert admin.post("/api/v1/tenants/ten_nobody/api-keys", json={}).status_code == 404
