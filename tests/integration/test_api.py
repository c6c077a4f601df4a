"""The REST API, served by a real uvicorn on loopback and called over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest

from hookline.api import create_app
from hookline.config import Settings
from hookline.verify import verify_signature

from ..conftest import API_KEY
from ..live import LiveServer
from ..receiver import Receiver

AUTH = {"Authorization": f"Bearer {API_KEY}"}


@contextmanager
def serve(settings: Settings) -> Iterator[httpx.Client]:
    with LiveServer(create_app(settings)) as server:
        with httpx.Client(base_url=server.url, headers=AUTH, timeout=10) as client:
            yield client


@pytest.fixture
def api(settings: Settings) -> Iterator[httpx.Client]:
    with serve(settings) as client:
        yield client


def add_webhook(api: httpx.Client, url: str, **extra) -> dict:
    body = {"name": "HR sync", "url": url, "topics": ["employee_create"], **extra}
    response = api.post("/api/v1/webhooks", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def wait_for_status(api: httpx.Client, delivery_id: str, status: str, timeout=10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        detail = api.get(f"/api/v1/deliveries/{delivery_id}").json()
        if detail["status"] == status:
            return detail
        time.sleep(0.02)
    raise AssertionError(f"delivery {delivery_id} is {detail['status']}, not {status}")


def test_health_needs_no_key(api: httpx.Client):
    assert api.get("/healthz", headers={"Authorization": ""}).json() == {"status": "ok"}


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic dGVzdA==", "Bearer"])
def test_the_api_needs_a_valid_key(api: httpx.Client, header):
    headers = {"Authorization": header} if header is not None else {"Authorization": ""}
    response = api.get("/api/v1/webhooks", headers=headers)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_webhook_lifecycle_never_reveals_the_secret(api: httpx.Client):
    created = add_webhook(api, "https://example.com/hook", secret="s3cret")
    assert created["has_secret"] is True and "secret" not in created
    # the core contract's fields, and the resilience settings and state next to them
    assert set(created) == {
        "id", "name", "url", "topics", "enabled", "has_secret", "created_at", "updated_at",
        "max_in_flight", "rate_limit", "ordered", "disabled_at", "disabled_reason",
        "failing_since", "previous_secret_until",
    }  # fmt: skip
    assert created["max_in_flight"] == 8 and created["ordered"] is False
    listed = api.get("/api/v1/webhooks").json()
    assert listed == {"data": [created], "next_cursor": None}
    assert "s3cret" not in api.get(f"/api/v1/webhooks/{created['id']}").text
    patched = api.patch(
        f"/api/v1/webhooks/{created['id']}",
        json={"name": "Renamed", "topics": ["employee_update", "leave_request_create"]},
    ).json()
    assert patched["name"] == "Renamed" and patched["has_secret"] is True
    assert patched["topics"] == ["employee_update", "leave_request_create"]
    removed = api.patch(f"/api/v1/webhooks/{created['id']}", json={"secret": None}).json()
    assert removed["has_secret"] is False
    assert api.delete(f"/api/v1/webhooks/{created['id']}").status_code == 204
    missing = api.get(f"/api/v1/webhooks/{created['id']}")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"


def test_a_generated_secret_is_shown_once(api: httpx.Client):
    created = add_webhook(api, "https://example.com/hook", secret="generate")
    assert created["secret"].startswith("whsec_") and created["has_secret"]
    assert "secret" not in api.get(f"/api/v1/webhooks/{created['id']}").json()
    rotated = api.patch(f"/api/v1/webhooks/{created['id']}", json={"secret": "generate"}).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]


def hook_body(**changes):
    body = {"name": "a", "url": "https://a.example/x", "topics": ["employee_create"]}
    body.update(changes)
    return {key: value for key, value in body.items() if value is not ...}


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        (hook_body(name=""), "name", ""),
        (hook_body(name=...), "name", ""),
        (hook_body(name="x" * 256), "name", "255"),
        (hook_body(url="ftp://a.example/x"), "url", "http"),
        (hook_body(url="https://u:p@a.example/"), "url", "credentials"),
        (hook_body(url="https://a.example/" + "x" * 2048), "url", "2048"),
        (hook_body(url="http://169.254.169.254/"), "url", "HOOKLINE_EGRESS_ALLOW"),
        (hook_body(url="http://[::1]:80/"), "url", "loopback"),
        (hook_body(topics=[]), "topics", "at least one"),
        (hook_body(topics=["employee_fly"]), "topics", "employee_create"),
        (hook_body(enabled="yes"), "enabled", ""),
        (hook_body(colour=1), "colour", ""),
        (hook_body(name="HR\x00sync"), "name", "control characters"),
        (hook_body(url="https://a.example/\nx"), "url", "control characters"),
        (hook_body(secret="s3\x00cret"), "secret", "control characters"),
    ],
)
def test_invalid_webhooks_are_refused_naming_the_field(api: httpx.Client, body, field, text):
    response = api.post("/api/v1/webhooks", json=body)
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] in ("invalid_input", "unknown_topic")
    assert problem["errors"][0]["field"] == field
    assert text in problem["detail"]
    assert api.get("/api/v1/webhooks").json()["data"] == []


def test_topics_are_listed_with_schema_and_example(api: httpx.Client):
    topics = api.get("/api/v1/topics").json()["data"]
    assert len(topics) == 20  # the reference product's 17 and hookline's own 3
    first = topics[0]
    assert first["name"] == "employee_create" and first["schema"]["type"] == "object"
    assert first["example"]["id"] == 130333


def test_publish_stores_the_event_and_answers_202(api: httpx.Client):
    add_webhook(api, "https://example.com/a")
    add_webhook(api, "https://example.com/b")
    body = b'{"action": "employee_create", "data": {"id": 7}}'
    response = api.post("/api/v1/events", content=body)
    assert response.status_code == 202
    accepted = response.json()
    assert set(accepted) == {"id", "action", "created_at", "deliveries"}
    assert accepted["action"] == "employee_create" and accepted["deliveries"] == 2
    event = api.get(f"/api/v1/events/{accepted['id']}").json()
    assert event["data"] == {"id": 7} and event["deliveries"] == 2
    listed = api.get("/api/v1/deliveries", params={"event_id": accepted["id"]}).json()["data"]
    assert len(listed) == 2


def test_publish_with_no_subscribers_is_accepted_with_zero_deliveries(api: httpx.Client):
    response = api.post("/api/v1/events", json={"action": "leave_request_create", "data": {}})
    assert response.status_code == 202 and response.json()["deliveries"] == 0


def test_an_idempotency_key_replays_the_first_answer(api: httpx.Client):
    add_webhook(api, "https://example.com/a")
    body = {"action": "employee_create", "data": {"id": 1}}
    headers = {"Idempotency-Key": "order-1"}
    first = api.post("/api/v1/events", json=body, headers=headers)
    again = api.post("/api/v1/events", json=body, headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(api.get("/api/v1/deliveries").json()["data"]) == 1
    other = api.post(
        "/api/v1/events", json={**body, "data": {"id": 2}}, headers={"Idempotency-Key": "order-1"}
    )
    assert other.status_code == 409 and other.json()["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("body", "status", "code", "text"),
    [
        (b"{not json", 400, "invalid_json", "not valid JSON"),
        (b"[1, 2]", 422, "invalid_input", "JSON object"),
        (b'{"action": "employee_fly", "data": {}}', 422, "unknown_topic", "leave_request_withdraw"),
        (b'{"data": {}}', 422, "invalid_input", "action"),
        (b'{"action": "employee_create"}', 422, "invalid_input", "data"),
        (b'{"action": "employee_create", "data": 5}', 422, "invalid_input", "object"),
        (b'{"action": "employee_create", "data": {}, "extra": 1}', 422, "invalid_input", "extra"),
        (b"\xff\xfe", 400, "invalid_json", ""),
    ],
)
def test_bad_events_are_refused_and_nothing_is_stored(api: httpx.Client, body, status, code, text):
    add_webhook(api, "https://example.com/a")
    response = api.post("/api/v1/events", content=body)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code and text in response.json()["detail"]
    assert api.get("/api/v1/deliveries").json()["data"] == []


def test_an_oversized_event_gets_413(settings: Settings):
    with serve(settings.with_(max_payload_bytes=1000)) as api:
        big = orjson.dumps({"action": "employee_create", "data": {"pad": "x" * 1000}})
        response = api.post("/api/v1/events", content=big)
        assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
        chunked = api.post("/api/v1/events", content=iter([big[:500], big[500:]]))
        assert chunked.status_code == 413


def test_schema_validation_is_opt_in(settings: Settings):
    body = {"action": "employee_create", "data": {"id": "not a number"}}
    with serve(settings) as api:
        assert api.post("/api/v1/events", json=body).status_code == 202
    with serve(settings.with_(validate_payloads=True)) as api:
        refused = api.post("/api/v1/events", json=body)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"].startswith(
            "data"
        )


def test_history_shows_raw_request_and_response(api: httpx.Client, receiver: Receiver):
    hook = add_webhook(api, receiver.url("/ok"), secret="s3cret")
    body = b'{"action": "employee_create", "data": {"id": 9}}'
    api.post("/api/v1/events", content=body)
    [delivery] = api.get("/api/v1/deliveries", params={"webhook_id": hook["id"]}).json()["data"]
    assert set(delivery) == {
        "id",
        "event_id",
        "webhook_id",
        "topic",
        "status",
        "attempts_count",
        "next_attempt_at",
        "last_status_code",
        "created_at",
    }
    detail = wait_for_status(api, delivery["id"], "succeeded")
    [attempt] = detail["attempts"]
    assert set(attempt) >= {"id", "number", "started_at", "duration_ms", "request", "response"}
    assert attempt["request"]["url"] == receiver.url("/ok")
    assert attempt["request"]["body"] == body.decode()
    assert attempt["request"]["headers"]["X-PeopleForce-Signature"].startswith("sha256=")
    assert attempt["response"]["status"] == 200 and attempt["response"]["body"] == "ok"
    assert attempt["error"] is None and detail["last_status_code"] == 200


def test_a_failed_attempt_explains_itself(api: httpx.Client, receiver: Receiver):
    add_webhook(api, receiver.url("/status/500"))
    api.post("/api/v1/events", json={"action": "employee_create", "data": {}})
    [delivery] = api.get("/api/v1/deliveries").json()["data"]
    detail = wait_for_status(api, delivery["id"], "failed")
    error = detail["attempts"][0]["error"]
    assert error["kind"] == "bad_status" and error["message"] == "HTTP 500"
    assert "5xx" in error["explanation"]


def test_test_events_and_redelivery(api: httpx.Client, receiver: Receiver):
    hook = add_webhook(api, receiver.url("/ok"))
    sent = api.post(f"/api/v1/webhooks/{hook['id']}/test", json={"topic": "employee_create"})
    assert sent.status_code == 202
    ids = sent.json()
    wait_for_status(api, ids["delivery_id"], "succeeded")
    again = api.post(f"/api/v1/deliveries/{ids['delivery_id']}/redeliver")
    assert again.status_code == 202
    receiver.wait_for(2, "/ok")
    unknown_topic = api.post(f"/api/v1/webhooks/{hook['id']}/test", json={"topic": "nope"})
    assert unknown_topic.status_code == 422
    default_topic = api.post(f"/api/v1/webhooks/{hook['id']}/test")
    assert default_topic.status_code == 202


def test_delivery_pages_and_filters(api: httpx.Client):
    add_webhook(api, "https://example.com/a")
    for index in range(5):
        api.post("/api/v1/events", json={"action": "employee_create", "data": {"i": index}})
    first = api.get("/api/v1/deliveries", params={"limit": 3}).json()
    second = api.get("/api/v1/deliveries", params={"limit": 3, "cursor": first["next_cursor"]})
    assert len(first["data"]) == 3 and len(second.json()["data"]) == 2
    assert second.json()["next_cursor"] is None
    bad = api.get("/api/v1/deliveries", params={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    assert api.get("/api/v1/deliveries", params={"limit": 0}).status_code == 422
    future = api.get("/api/v1/deliveries", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["data"] == []
    assert api.get("/api/v1/deliveries", params={"webhook_id": "wh_nope"}).status_code == 404


def test_unknown_ids_are_404_everywhere(api: httpx.Client):
    for method, path in [
        ("GET", "/api/v1/webhooks/wh_x"),
        ("PATCH", "/api/v1/webhooks/wh_x"),
        ("DELETE", "/api/v1/webhooks/wh_x"),
        ("POST", "/api/v1/webhooks/wh_x/test"),
        ("GET", "/api/v1/events/evt_x"),
        ("GET", "/api/v1/deliveries/dlv_x"),
        ("POST", "/api/v1/deliveries/dlv_x/redeliver"),
        ("GET", "/api/v1/nothing"),
    ]:
        response = api.request(method, path, json={} if method == "PATCH" else None)
        assert response.status_code == 404, (method, path)
        assert response.json()["code"] == "not_found"


def test_openapi_documents_the_contract(api: httpx.Client):
    spec = api.get("/openapi.json").json()
    for path in [
        "/api/v1/webhooks",
        "/api/v1/webhooks/{webhook_id}",
        "/api/v1/webhooks/{webhook_id}/test",
        "/api/v1/topics",
        "/api/v1/events",
        "/api/v1/events/{event_id}",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{delivery_id}",
        "/api/v1/deliveries/{delivery_id}/redeliver",
        "/healthz",
    ]:
        assert path in spec["paths"], path
    assert api.get("/docs").status_code == 200


def test_per_webhook_limits_are_set_and_checked(api: httpx.Client):
    hook = add_webhook(api, "https://example.com/a", max_in_flight=2, rate_limit=5.5, ordered=True)
    assert (hook["max_in_flight"], hook["rate_limit"], hook["ordered"]) == (2, 5.5, True)
    patched = api.patch(f"/api/v1/webhooks/{hook['id']}", json={"rate_limit": None}).json()
    assert patched["rate_limit"] is None and patched["max_in_flight"] == 2
    for field, value in [("max_in_flight", 0), ("max_in_flight", 101), ("rate_limit", -1),
                         ("ordered", "yes"), ("max_in_flight", 2.5)]:  # fmt: skip
        response = api.patch(f"/api/v1/webhooks/{hook['id']}", json={field: value})
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == field


def test_replay_sends_what_did_not_arrive(api: httpx.Client, receiver: Receiver):
    hook = add_webhook(api, receiver.url("/ok"))
    api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": False})
    api.post("/api/v1/events", json={"action": "employee_create", "data": {"n": 1}})
    [skipped] = api.get("/api/v1/deliveries", params={"status": "skipped"}).json()["data"]
    assert skipped["webhook_id"] == hook["id"] and skipped["next_attempt_at"] is None
    api.patch(f"/api/v1/webhooks/{hook['id']}", json={"enabled": True})
    replayed = api.post(f"/api/v1/webhooks/{hook['id']}/replay", json={})
    assert replayed.status_code == 202 and replayed.json() == {"replayed": 1}
    wait_for_status(api, skipped["id"], "succeeded")
    assert receiver.wait_for(1, "/ok")
    bad = api.post(f"/api/v1/webhooks/{hook['id']}/replay", json={"status": "lost"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status"
    assert api.post("/api/v1/webhooks/wh_nope/replay", json={}).status_code == 404


def test_metrics_and_readiness(api: httpx.Client, receiver: Receiver):
    add_webhook(api, receiver.url("/ok"))
    api.post("/api/v1/events", json={"action": "employee_create", "data": {}})
    receiver.wait_for(1, "/ok")
    time.sleep(0.3)
    text = api.get("/metrics").text
    assert 'hookline_events_published_total{topic="employee_create"} 1.0' in text
    assert 'hookline_deliveries_total{outcome="succeeded"} 1.0' in text
    assert "hookline_attempt_duration_seconds_bucket" in text
    assert "hookline_deliveries_due 0.0" in text
    assert "dlv_" not in text and "evt_" not in text  # no per-event labels
    ready = api.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "dispatcher": "running"}


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        (b'{"action": "employee_create", "data": {"a": 1, "a": 2}}', 400, "'a' appears twice"),
        (b'{"action": "employee_create", "data": {"a": NaN}}', 400, "not valid JSON"),
        (b'{"action": "employee_create", "data": {"a": Infinity}}', 400, "not valid JSON"),
        (b'{"action": "employee_create", "data": {"a": "\\ud800"}}', 400, "surrogate"),
        (b'{"action": "employee_create", "data": ' + b'{"a": ' * 40 + b"1" + b"}" * 41,
         422, "nested deeper than 32"),
    ],
)  # fmt: skip
def test_ambiguous_or_hostile_json_is_refused_with_what_is_wrong(api, body, status, text):
    response = api.post("/api/v1/events", content=body)
    assert response.status_code == status, response.text
    assert text in response.json()["detail"]


def test_valid_unicode_goes_through_byte_exact_and_verifies(api: httpx.Client, receiver):
    add_webhook(api, receiver.url("/ok"), secret="s3cret ✓")
    body = (
        '{"action": "employee_create", "data": {"emoji": "🚀👩🏽‍💻", "rtl": "שלום עליכם",'
        ' "nul": "a\\u0000b", "escaped": "\\u00e9"}}'
    ).encode()
    assert api.post("/api/v1/events", content=body).status_code == 202
    [got] = receiver.wait_for(1, "/ok")
    assert got.body == body
    verify_signature(got.body, got.headers["X-PeopleForce-Signature"], "s3cret ✓")


def test_oversized_headers_get_431(api: httpx.Client):
    response = api.get("/api/v1/webhooks", headers={"X-Padding": "a" * 20000})
    assert response.status_code == 431 and response.json()["code"] == "headers_too_large"
    assert api.get("/api/v1/webhooks", headers={"X-Padding": "a" * 1000}).status_code == 200


def test_limits_on_webhooks_per_tenant_and_publishing_per_key(settings: Settings):
    with serve(settings.with_(max_webhooks=2, publish_rate=3)) as api:
        add_webhook(api, "https://example.com/1")
        add_webhook(api, "https://example.com/2")
        third = api.post(
            "/api/v1/webhooks",
            json={"name": "3", "url": "https://example.com/3", "topics": ["employee_create"]},
        )
        assert third.status_code == 409 and "HOOKLINE_MAX_WEBHOOKS" in third.json()["detail"]
        event = {"action": "employee_create", "data": {}}
        answers = [api.post("/api/v1/events", json=event) for _ in range(6)]
        codes = [answer.status_code for answer in answers]
        assert codes[:3] == [202, 202, 202] and 429 in codes[3:], codes
        limited = next(answer for answer in answers if answer.status_code == 429)
        assert limited.json()["code"] == "rate_limited"
        assert int(limited.headers["Retry-After"]) >= 1
