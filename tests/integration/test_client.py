"""hookline.Client and hookline.AsyncClient against a live server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import hookline
from hookline.api import create_app
from hookline.config import Settings

from ..conftest import API_KEY
from ..live import LiveServer
from ..receiver import Receiver


@pytest.fixture
def server(settings: Settings) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as live:
        yield live


def test_the_blocking_client_covers_the_api(server: LiveServer, receiver: Receiver):
    with hookline.Client(server.url, API_KEY) as client:
        hook = client.create_webhook(
            "c", receiver.url("/ok"), ["employee_create"], secret="generate"
        )
        assert hook["secret"].startswith("whsec_")
        assert client.get_webhook(hook["id"])["name"] == "c"
        assert client.update_webhook(hook["id"], enabled=False)["enabled"] is False
        assert client.update_webhook(hook["id"], enabled=True)["enabled"] is True
        assert [w["id"] for w in client.list_webhooks()["data"]] == [hook["id"]]
        event = client.publish("employee_create", {"id": 1}, idempotency_key="once")
        assert client.publish("employee_create", {"id": 1}, idempotency_key="once") == event
        assert client.get_event(event["id"])["data"] == {"id": 1}
        receiver.wait_for(1, "/ok")
        [delivery] = client.list_deliveries(event_id=event["id"])["data"]
        assert client.get_delivery(delivery["id"])["event_id"] == event["id"]
        assert client.redeliver(delivery["id"])["id"] == delivery["id"]
        sent = client.send_test(hook["id"])
        assert sent["delivery_id"].startswith("dlv_")
        assert len(client.list_topics()["data"]) == 20
        client.delete_webhook(hook["id"])
        with pytest.raises(hookline.ClientError) as caught:
            client.get_webhook(hook["id"])
        assert caught.value.status == 404 and caught.value.code == "not_found"


async def test_the_async_client_publishes_and_reports_errors(server: LiveServer):
    async with hookline.AsyncClient(server.url, API_KEY) as client:
        accepted = await client.publish("employee_update", {"id": 2})
        assert accepted["action"] == "employee_update" and accepted["deliveries"] == 0
        with pytest.raises(hookline.ClientError) as caught:
            await client.publish("no_such_topic", {})
        assert caught.value.status == 422 and caught.value.code == "unknown_topic"
    async with hookline.AsyncClient(server.url, "wrong") as client:
        with pytest.raises(hookline.ClientError) as caught:
            await client.list_webhooks()
        assert caught.value.status == 401
