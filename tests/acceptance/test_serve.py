"""The README's story, against ``hookline serve`` in a subprocess: a user's first webhook."""

from __future__ import annotations

import base64
import threading
import time
from pathlib import Path

import httpx
import orjson
import standardwebhooks

import hookline
from hookline.verify import verify_signature

from ..conftest import API_KEY
from ..receiver import Receiver
from .conftest import HooklineProcess

SEED_BODY = (Path(__file__).parent / "seed_employee_create.json").read_bytes()
SECRET = "my webhook secret"


def test_the_first_webhook_story(serve: HooklineProcess, receiver: Receiver):
    with hookline.Client(serve.url, API_KEY) as client:
        hook = client.create_webhook(
            "HR sync", receiver.url("/ok"), ["employee_create", "employee_update"], secret=SECRET
        )
        # the seed's exact payload, published as raw bytes
        accepted = httpx.post(
            f"{serve.url}/api/v1/events",
            content=SEED_BODY,
            headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
        )
        assert accepted.status_code == 202 and accepted.json()["deliveries"] == 1
        [got] = receiver.wait_for(1, "/ok")
        assert got.body == SEED_BODY
        # the seed's rules: sha256=<hex HMAC-SHA256(secret, body)>, constant-time, UTF-8
        verify_signature(got.body, got.headers["X-PeopleForce-Signature"], SECRET)
        library_secret = "whsec_" + base64.b64encode(SECRET.encode()).decode()
        assert standardwebhooks.Webhook(library_secret).verify(got.body, got.headers)
        deadline = time.monotonic() + 10
        while True:
            [delivery] = client.list_deliveries(webhook_id=hook["id"])["data"]
            if delivery["status"] == "succeeded" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        detail = client.get_delivery(delivery["id"])
        [attempt] = detail["attempts"]
        assert attempt["request"]["body"] == SEED_BODY.decode()
        assert (
            attempt["request"]["headers"]["X-PeopleForce-Signature"]
            == got.headers["X-PeopleForce-Signature"]
        )
        assert attempt["response"] == {
            "status": 200,
            "headers": attempt["response"]["headers"],
            "body": "ok",
        }


def test_a_first_start_without_a_key_prints_one_that_works(db, tmp_path):
    process = HooklineProcess(db, tmp_path, HOOKLINE_API_KEY="")
    process.start()
    try:
        log = process.log.read_text()
        key = next(word for word in log.split() if word.startswith("hk_"))
        with hookline.Client(process.url, key) as client:
            assert len(client.list_topics()["data"]) == 20
    finally:
        process.stop()
    again = HooklineProcess(db, tmp_path, HOOKLINE_API_KEY="")
    again.log = tmp_path / "second.log"
    again.start()
    try:
        assert "hk_" not in again.log.read_text()  # printed once, never again
    finally:
        again.stop()


def test_sigterm_stops_serve_cleanly(serve: HooklineProcess):
    assert serve.stop() == 0


def test_kill_9_loses_no_accepted_event(db, tmp_path, receiver: Receiver):
    """Kill the server mid-delivery and mid-publish; every 202 still arrives after a restart."""
    first = HooklineProcess(db, tmp_path).start()
    with hookline.Client(first.url, API_KEY) as client:
        client.create_webhook("slow", receiver.url("/slow/0.2"), ["employee_create"])
    accepted: list[int] = []

    def publish() -> None:
        with hookline.Client(first.url, API_KEY, timeout=5) as client:
            for index in range(400):
                try:
                    client.publish("employee_create", {"id": index})
                except (httpx.TransportError, hookline.ClientError):
                    return
                accepted.append(index)

    publisher = threading.Thread(target=publish)
    publisher.start()
    receiver.wait_for(10, timeout=20)
    first.kill()
    publisher.join(30)
    assert 10 <= len(accepted) < 400, len(accepted)
    second = HooklineProcess(db, tmp_path).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            arrived = {orjson.loads(r.body)["data"]["id"] for r in receiver.received()}
            if arrived >= set(accepted):
                break
            time.sleep(0.1)
        missing = set(accepted) - arrived
        assert not missing, f"{len(missing)} accepted events never arrived"
        # the ones sent twice (in flight at the kill) carried the same webhook-id both times
        by_id: dict[int, set[str]] = {}
        for r in receiver.received():
            by_id.setdefault(orjson.loads(r.body)["data"]["id"], set()).add(r.headers["webhook-id"])
        assert all(len(ids) == 1 for ids in by_id.values())
    finally:
        second.stop()
