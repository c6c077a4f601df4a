"""A real browser: Playwright driving Debian's Chromium (never a downloaded one)."""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from hookline.api import create_app
from hookline.config import Settings

from ..conftest import API_KEY
from ..live import LiveServer
from ..receiver import closed_port

CHROMIUM = os.environ.get("HOOKLINE_TEST_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM):
        message = f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def hookline_url(database: str) -> Iterator[str]:
    """hookline on a known port, so that test inbox URLs point at itself."""
    port = closed_port()
    settings = Settings(
        database_url=database,
        api_key=API_KEY,
        egress_allow=(ipaddress.ip_network("127.0.0.0/8"),),
        public_url=f"http://127.0.0.1:{port}",
        retry_schedule=(0, 30),
        retry_jitter=0,
        attempt_timeout=2,
        lease_seconds=4,
        poll_interval=0.2,
    )
    with LiveServer(create_app(settings), port=port) as server:
        yield server.url


@pytest.fixture(params=["desktop", "phone"])
def page(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    size = DESKTOP if request.param == "desktop" else PHONE
    context = browser.new_context(viewport=size)
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def shoot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.screenshot(path=str(SHOTS / f"{name}-{width}.png"), full_page=True)
