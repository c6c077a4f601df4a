"""Delivery end to end: the real dispatcher, a real SQLite file, real receivers on loopback."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator

import orjson
import pytest
import standardwebhooks

from hookline.config import Settings
from hookline.errors import InvalidInput
from hookline.models import DEFAULT_TENANT, DeliveryDetail, DeliveryStatus, ErrorKind
from hookline.runtime import Runtime
from hookline.service import Service
from hookline.verify import verify_signature, verify_standard_webhook

from ..helpers import eventually
from ..receiver import Receiver, closed_port

SECRET = "It's a Secret to Everybody"
SEED_DATA = {"id": 130333, "attributes": {"first_name": "John", "last_name": "Doe"}}


@pytest.fixture
async def service(settings: Settings) -> AsyncIterator[Service]:
    async with Runtime(settings, dispatch=True) as runtime:
        yield runtime.service


async def subscribe(service: Service, url: str, secret: str | None = SECRET) -> str:
    saved = await service.create_webhook(
        DEFAULT_TENANT, name="receiver", url=url, topics=["employee_create"], secret=secret
    )
    return saved.webhook.id


async def publish_one(service: Service, body: bytes | None = None) -> str:
    body = body or orjson.dumps({"action": "employee_create", "data": SEED_DATA})
    stored = await service.publish(DEFAULT_TENANT, body)
    return stored.delivery_ids[0]


async def settled(service: Service, delivery_id: str, timeout: float = 10) -> DeliveryDetail:
    """The delivery once it has succeeded or failed for good."""
    return await eventually(
        lambda: service.get_delivery(DEFAULT_TENANT, delivery_id),
        lambda d: d.delivery.status in (DeliveryStatus.SUCCEEDED, DeliveryStatus.FAILED),
        timeout,
    )


async def test_the_receiver_gets_the_exact_body_signed_both_ways(service, receiver: Receiver):
    await subscribe(service, receiver.url("/ok"))
    body = b'{"action": "employee_create",\n "data": {"name": "\xc5\x81ukasz \xf0\x9f\x9a\x80"}}'
    delivery_id = await publish_one(service, body)
    detail = await settled(service, delivery_id)
    [got] = receiver.received("/ok")
    assert got.body == body
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"].startswith("hookline/")
    assert got.headers["webhook-id"] == delivery_id
    assert abs(int(got.headers["webhook-timestamp"]) - time.time()) < 10
    verify_signature(got.body, got.headers["X-PeopleForce-Signature"], SECRET)
    verify_standard_webhook(got.body, got.headers, SECRET)
    library_secret = "whsec_" + base64.b64encode(SECRET.encode()).decode()
    standardwebhooks.Webhook(library_secret).verify(got.body, got.headers)
    assert detail.delivery.status is DeliveryStatus.SUCCEEDED
    [attempt] = detail.attempts
    assert attempt.request_body == body and attempt.response_status == 200
    assert attempt.response_body == b"ok" and attempt.error_kind is None
    assert (
        attempt.request_headers["X-PeopleForce-Signature"] == got.headers["X-PeopleForce-Signature"]
    )


async def test_without_a_secret_no_signature_is_sent(service, receiver: Receiver):
    await subscribe(service, receiver.url("/ok"), secret=None)
    await settled(service, await publish_one(service))
    [got] = receiver.received("/ok")
    assert "X-PeopleForce-Signature" not in got.headers and "webhook-signature" not in got.headers
    assert got.headers["webhook-id"]


async def test_failures_are_retried_with_the_same_webhook_id_until_success(service, receiver):
    await subscribe(service, receiver.url("/flaky/2"))
    detail = await settled(service, await publish_one(service))
    assert detail.delivery.status is DeliveryStatus.SUCCEEDED
    assert [a.response_status for a in detail.attempts] == [500, 500, 200]
    assert [a.error_kind for a in detail.attempts] == [ErrorKind.BAD_STATUS] * 2 + [None]
    ids = {r.headers["webhook-id"] for r in receiver.received("/flaky/2")}
    assert ids == {detail.delivery.id}


async def test_after_the_last_attempt_the_delivery_is_failed(service, receiver):
    await subscribe(service, receiver.url("/status/404"))
    detail = await settled(service, await publish_one(service))
    assert detail.delivery.status is DeliveryStatus.FAILED
    assert detail.delivery.attempts_count == 3  # the schedule in conftest has three entries
    assert detail.delivery.last_status_code == 404
    assert detail.attempts[-1].response_body == b"status 404"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/status/500", ErrorKind.BAD_STATUS),
        ("/status/410", ErrorKind.BAD_STATUS),
        ("/redirect", ErrorKind.REDIRECT),
        ("/hang", ErrorKind.TIMEOUT),
        ("/drip", ErrorKind.TIMEOUT),
        ("/close", ErrorKind.CONNECTION),
    ],
)
async def test_each_failure_has_a_named_kind(settings, receiver, path, kind):
    quick = settings.with_(retry_schedule=(0,))
    async with Runtime(quick, dispatch=True) as runtime:
        await subscribe(runtime.service, receiver.url(path))
        started = time.monotonic()
        detail = await settled(runtime.service, await publish_one(runtime.service))
        elapsed = time.monotonic() - started
    [attempt] = detail.attempts
    assert attempt.error_kind is kind, attempt
    assert detail.delivery.status is DeliveryStatus.FAILED
    # the deadline covers the whole attempt, a dripping body included
    assert elapsed < quick.attempt_timeout + 2
    if kind is ErrorKind.REDIRECT:
        assert receiver.received("/ok") == []
        assert "/ok" in (attempt.error_message or "")
    if path == "/drip":
        assert attempt.response_status == 200


async def test_a_refused_connection_is_named(settings):
    async with Runtime(settings.with_(retry_schedule=(0,)), dispatch=True) as runtime:
        await subscribe(runtime.service, f"http://127.0.0.1:{closed_port()}/")
        detail = await settled(runtime.service, await publish_one(runtime.service))
    assert detail.attempts[0].error_kind is ErrorKind.CONNECTION_REFUSED
    assert detail.attempts[0].response_status is None


@pytest.mark.parametrize(
    ("make_url", "kind"),
    [
        (lambda receiver: "http://nonexistent.invalid/hook", ErrorKind.DNS),
        # TLS spoken to a plain-HTTP server: the handshake fails
        (lambda receiver: f"https://127.0.0.1:{receiver.port}/ok", ErrorKind.TLS),
    ],
)
async def test_dns_and_tls_failures_are_named(settings, receiver, make_url, kind):
    async with Runtime(settings.with_(retry_schedule=(0,)), dispatch=True) as runtime:
        await subscribe(runtime.service, make_url(receiver))
        detail = await settled(runtime.service, await publish_one(runtime.service))
    assert detail.attempts[0].error_kind is kind, detail.attempts[0]
    assert receiver.received("/ok") == []


async def test_a_huge_response_is_read_only_up_to_the_cap(settings, receiver):
    async with Runtime(settings.with_(retry_schedule=(0,)), dispatch=True) as runtime:
        await subscribe(runtime.service, receiver.url("/big"))
        detail = await settled(runtime.service, await publish_one(runtime.service))
    [attempt] = detail.attempts
    assert attempt.response_status == 200 and attempt.error_kind is None
    assert attempt.response_body is not None
    assert len(attempt.response_body) == settings.response_body_max


async def test_retry_after_is_honoured(settings, receiver):
    slow = settings.with_(retry_schedule=(0, 0.1))
    async with Runtime(slow, dispatch=True) as runtime:
        await subscribe(runtime.service, receiver.url("/status/429?retry_after=2"))
        delivery_id = await publish_one(runtime.service)
        detail = await settled(runtime.service, delivery_id, timeout=10)
    first, second = receiver.received("/status/429")
    assert second.at - first.at >= 1.9
    assert detail.delivery.status is DeliveryStatus.FAILED


async def test_the_egress_guard_blocks_loopback_unless_allowed(settings, receiver):
    closed = settings.with_(egress_allow=(), retry_schedule=(0,))
    # created while the operator allowed loopback ...
    async with Runtime(settings, dispatch=False) as runtime:
        await subscribe(runtime.service, f"http://localhost:{receiver.port}/ok")
    # ... and delivered after the allowlist was taken away
    async with Runtime(closed, dispatch=True) as runtime:
        detail = await settled(runtime.service, await publish_one(runtime.service))
        with pytest.raises(InvalidInput, match="egress guard"):
            await subscribe(runtime.service, f"http://localhost:{receiver.port}/ok")
    [attempt] = detail.attempts
    assert attempt.error_kind is ErrorKind.BLOCKED
    assert "HOOKLINE_EGRESS_ALLOW" in (attempt.error_message or "")
    assert receiver.received() == []


async def test_redeliver_sends_again_with_the_same_webhook_id(service, receiver):
    await subscribe(service, receiver.url("/ok"))
    delivery_id = await publish_one(service)
    await settled(service, delivery_id)
    await service.redeliver(DEFAULT_TENANT, delivery_id)
    detail = await eventually(
        lambda: service.get_delivery(DEFAULT_TENANT, delivery_id),
        lambda d: len(d.attempts) == 2 and d.delivery.status is DeliveryStatus.SUCCEEDED,
    )
    first, second = receiver.received("/ok")
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery_id
    assert first.body == second.body
    assert detail.attempts[1].manual and not detail.attempts[0].manual


async def test_a_test_event_goes_to_that_webhook_alone(service, receiver):
    target = await subscribe(service, receiver.url("/ok"))
    await subscribe(service, receiver.url("/status/200"))
    sent = await service.send_test(DEFAULT_TENANT, target, "employee_create")
    detail = await settled(service, sent.delivery_id)
    assert detail.delivery.webhook_id == target
    [got] = receiver.received("/ok")
    payload = orjson.loads(got.body)
    assert payload["action"] == "employee_create" and payload["data"]["id"] == 130333
    assert receiver.received("/status/200") == []


async def test_many_events_all_arrive(service, receiver):
    await subscribe(service, receiver.url("/ok"))
    for index in range(300):
        await service.publish_data(DEFAULT_TENANT, "employee_create", {"id": index})
    got = await eventually(lambda: _received(receiver), lambda r: len(r) >= 300, timeout=20)
    assert sorted(orjson.loads(r.body)["data"]["id"] for r in got) == list(range(300))


async def _received(receiver: Receiver):
    return receiver.received("/ok")


async def test_a_test_inbox_receives_in_process_without_egress(settings):
    closed = settings.with_(egress_allow=(), public_url="http://hookline.test:8000")
    async with Runtime(closed, dispatch=True) as runtime:
        svc = runtime.service
        inbox = await svc.inboxes.create(DEFAULT_TENANT, "try it")
        url = svc.inboxes.url(inbox)
        assert url.startswith("http://hookline.test:8000/inbox/")
        await subscribe(svc, url)
        detail = await settled(svc, await publish_one(svc))
        assert detail.delivery.status is DeliveryStatus.SUCCEEDED
        _, [captured] = await svc.inboxes.get(DEFAULT_TENANT, inbox.id)
        assert captured.body == detail.attempts[0].request_body
        check = svc.inboxes.check(captured, SECRET)
        assert check.peopleforce == "valid" and check.standard == "valid"
        wrong = svc.inboxes.check(captured, "not the secret")
        assert wrong.peopleforce.startswith("invalid") and wrong.standard.startswith("invalid")
        await svc.inboxes.delete(DEFAULT_TENANT, inbox.id)
        detail = await settled(
            svc, (await svc.send_test(DEFAULT_TENANT, detail.delivery.webhook_id)).delivery_id
        )
        assert detail.attempts[0].response_status == 404  # the inbox is gone


async def test_a_rotated_secret_overlaps_with_the_old_one(settings, receiver):
    async with Runtime(settings, dispatch=True) as runtime:
        svc = runtime.service
        hook = await subscribe(svc, receiver.url("/ok"), secret="old secret")
        rotated = await svc.rotate_secret(DEFAULT_TENANT, hook, "generate", overlap=3600)
        new = rotated.generated_secret
        assert new and new.startswith("whsec_")
        await settled(svc, await publish_one(svc))
        # an overlap of zero retires the old secret at once
        await svc.rotate_secret(DEFAULT_TENANT, hook, "third secret", overlap=0)
        await settled(svc, await publish_one(svc))
    during, after = receiver.received("/ok")
    # the new secret signs both headers; the old one still signs webhook-signature
    verify_signature(during.body, during.headers["X-PeopleForce-Signature"], new)
    verify_standard_webhook(during.body, during.headers, new)
    verify_standard_webhook(during.body, during.headers, "old secret")
    assert len(during.headers["webhook-signature"].split()) == 2
    assert len(after.headers["webhook-signature"].split()) == 1
    verify_standard_webhook(after.body, after.headers, "third secret")
