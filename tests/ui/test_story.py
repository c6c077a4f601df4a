"""The reference help page's whole story, in a real browser, on a desktop and a phone:
sign in, add a webhook, send a test event, open the history and the delivery, see the raw
data and the response; a failing receiver explained; redelivery; the test inbox."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect

from ..conftest import API_KEY
from ..receiver import Receiver
from .conftest import shoot


def nav(page: Page, label: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=label).click()


def sign_in(page: Page, base: str) -> None:
    page.goto(base + "/")
    expect(page).to_have_url(re.compile(r"/sign-in"))
    shoot(page, "01-sign-in")
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_label("API key").press("Enter")  # by keyboard
    expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()


def add_webhook(page: Page, name: str, url: str, topics: list[str], secret: str = "") -> None:
    nav(page, "Webhooks")
    page.get_by_role("link", name="Add new webhook").click()
    page.get_by_label("Name").fill(name)
    page.get_by_label("Payload URL").fill(url)
    if secret:
        page.get_by_label("Secret").fill(secret)
    for topic in topics:
        page.get_by_label(topic, exact=True).check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name=name, exact=True)).to_be_visible()


def send_test_and_open(page: Page, topic: str, outcome: str) -> None:
    """Send a test event from the webhook page and open its delivery once it has an outcome."""
    page.get_by_label("Topic", exact=True).first.select_option(topic)
    page.get_by_role("button", name="Send test event").click()
    expect(page.locator("p.notice")).to_contain_text("Test event sent")
    deadline = time.monotonic() + 10
    row = page.locator("table.history tbody tr").first
    while outcome not in row.inner_text() and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    expect(row).to_contain_text(outcome)
    row.get_by_role("link", name=topic).click()  # "clicking on the name of the delivery"


def test_the_seed_story(page: Page, hookline_url: str, receiver: Receiver):
    width = page.viewport_size["width"] if page.viewport_size else 0
    started = time.monotonic()
    sign_in(page, hookline_url)
    shoot(page, "02-webhooks-empty")

    # Settings → Webhooks → Add new webhook, with the seed's four fields
    page.get_by_role("link", name="Add new webhook").click()
    expect(page.get_by_label("Name")).to_be_visible()
    expect(page.get_by_label("Payload URL")).to_be_visible()
    expect(page.get_by_label("Secret")).to_be_visible()
    expect(page.get_by_role("group", name="Topics")).to_be_visible()
    page.get_by_role("button", name="Generate").click()
    generated = page.get_by_label("Secret").input_value()
    assert generated.startswith("whsec_")
    page.get_by_label("Name").fill("HR sync")
    page.get_by_label("Payload URL").fill(receiver.url("/ok"))
    page.get_by_label("Secret").fill("my webhook secret")
    page.get_by_label("employee_create", exact=True).check()
    page.get_by_label("employee_update", exact=True).check()
    shoot(page, "03-add-webhook")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="HR sync", exact=True)).to_be_visible()

    send_test_and_open(page, "employee_create", "succeeded")
    expect(page.get_by_role("heading", name="Raw data sent")).to_be_visible()
    expect(page.get_by_text("X-PeopleForce-Signature")).to_be_visible()
    expect(page.locator("#request-body")).to_contain_text('"action": "employee_create"')
    expect(page.locator("article.attempt").first).to_contain_text("200")
    expect(page.locator("article.attempt").first).to_contain_text("Success")
    seconds = time.monotonic() - started
    shoot(page, "05-delivery")
    # the new user found the raw request and the response in well under a minute
    assert seconds < 60, seconds
    [got] = receiver.received("/ok")
    assert got.headers["X-PeopleForce-Signature"].startswith("sha256=")

    # redeliver: one more attempt, same webhook-id
    page.get_by_role("button", name="Redeliver").click()
    expect(page.locator("p.notice")).to_contain_text("Redelivery queued")
    receiver.wait_for(2, "/ok")
    page.reload()
    expect(page.locator("article.attempt")).to_have_count(2)
    first, second = receiver.received("/ok")
    assert first.headers["webhook-id"] == second.headers["webhook-id"]

    # a receiver that fails: 500, explained as the seed's troubleshooting guide does
    page.locator(".crumbs").get_by_role("link", name="HR sync").click()
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    shoot(page, "04-webhook-history")
    add_webhook(page, "Broken receiver", receiver.url("/status/500"), ["leave_request_create"])
    send_test_and_open(page, "leave_request_create", "pending")
    attempt = page.locator("article.attempt").first
    expect(attempt).to_contain_text("500")
    expect(attempt).to_contain_text("there was a problem on the receiving server")
    expect(page.get_by_text("Next attempt")).to_be_visible()
    shoot(page, "06-delivery-failed")

    nav(page, "Webhooks")
    expect(page.get_by_role("link", name="HR sync")).to_be_visible()
    shoot(page, "07-webhooks")
    assert width > 0


def test_invalid_input_is_shown_by_its_field_and_nothing_is_saved(page: Page, hookline_url: str):
    sign_in(page, hookline_url)
    page.get_by_role("link", name="Add new webhook").click()
    page.get_by_label("Name").fill("Bad one")
    page.get_by_label("Payload URL").fill("ftp://example.com/hook")
    page.get_by_label("employee_create", exact=True).check()
    page.get_by_role("button", name="Save").click()
    url_field = page.get_by_label("Payload URL")
    expect(url_field).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#url-error")).to_contain_text("http")
    expect(page.get_by_label("Name")).to_have_value("Bad one")  # what was typed stays
    shoot(page, "08-invalid")
    nav(page, "Webhooks")
    expect(page.get_by_text("No webhooks yet")).to_be_visible()


def test_the_test_inbox_catches_a_signed_request(page: Page, hookline_url: str):
    sign_in(page, hookline_url)
    nav(page, "Test inbox")
    page.get_by_label("Name").fill("Trying it out")
    page.get_by_role("button", name="Create inbox").click()
    inbox_page = page.url
    inbox_url = page.locator("#inbox-url").inner_text().strip()
    assert inbox_url.startswith(hookline_url + "/inbox/")
    add_webhook(page, "To the inbox", inbox_url, ["employee_terminate"], secret="s3cret")
    page.get_by_label("Topic", exact=True).first.select_option("employee_terminate")
    page.get_by_role("button", name="Send test event").click()
    page.goto(inbox_page)
    expect(page.locator("article.captured")).to_have_count(1, timeout=10_000)
    expect(page.locator("article.captured")).to_contain_text("employee_terminate")
    page.get_by_label("Secret").fill("s3cret")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("article.captured")).to_contain_text("X-PeopleForce-Signature: valid")
    expect(page.locator("article.captured")).to_contain_text("webhook-signature: valid")
    shoot(page, "09-inbox")
    page.get_by_label("Secret").fill("wrong")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("article.captured")).to_contain_text("X-PeopleForce-Signature: invalid")


def test_every_page_labels_its_controls_and_needs_a_session(page: Page, hookline_url: str):
    page.goto(hookline_url + "/topics")
    expect(page).to_have_url(re.compile(r"/sign-in\?next=/topics"))
    sign_in(page, hookline_url)
    for path in [
        "/settings/webhooks",
        "/settings/webhooks/new",
        "/topics",
        "/inboxes",
        "/verifying",
    ]:
        page.goto(hookline_url + path)
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                .map(el => el.name || el.id)"""
        )
        assert unlabelled == [], (path, unlabelled)
    shoot(page, "10-verifying")
    page.goto(hookline_url + "/topics")
    shoot(page, "11-topics")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/sign-in"))
    page.goto(hookline_url + "/settings/webhooks")
    expect(page).to_have_url(re.compile(r"/sign-in"))


def test_a_webhook_disabled_by_hookline_says_why_and_replays_on_enable(
    page: Page, hookline_url: str, receiver: Receiver
):
    sign_in(page, hookline_url)
    add_webhook(page, "Gone away", receiver.url("/status/410"), ["employee_create"])
    page.get_by_role("button", name="Send test event").click()
    deadline = time.monotonic() + 10
    while "This webhook is disabled" not in page.content() and time.monotonic() < deadline:
        time.sleep(0.2)
        page.reload()
    expect(page.get_by_role("heading", name="This webhook is disabled")).to_be_visible()
    expect(page.locator(".state-off")).to_contain_text("410 Gone")
    shoot(page, "12-disabled")
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("Payload URL").fill(receiver.url("/ok"))
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_label("Also replay what failed or was skipped", exact=False)).to_be_checked()
    page.locator(".state-off").get_by_role("button", name="Enable").click()
    expect(page.locator("p.notice")).to_contain_text("Replay queued")
    [got] = receiver.wait_for(1, "/ok")
    assert b"employee_create" in got.body
