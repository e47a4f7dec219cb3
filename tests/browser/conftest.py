"""Shared fixtures for browser tests: a real headless Chromium (Debian's package) driven by
Playwright against pytest-django's ``live_server``.

Tests here use ``live_server``, so their database is transactional and flushed afterwards; mark
them ``@pytest.mark.django_db(transaction=True, serialized_rollback=True)`` so the rows seeded by
migrations (the label taxonomy) are restored for the tests that run after them. Seed data in a
fixture listed before ``browser_page`` where you can: the ORM then runs before Playwright's
event loop does.
"""

from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connections

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(settings.BASE_DIR) / "var" / "screenshots"


@pytest.fixture
def browser_page(monkeypatch):
    """A fresh Chromium page (1280x900). Yields a Playwright ``Page``; closes everything after."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser`).")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, which makes Django refuse ORM
    # calls from the test body unless told that this is deliberate.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()
            # ORM calls made while Playwright's loop runs get their own connection; close it here,
            # or the test database cannot be dropped at the end of the session.
            connections.close_all()


@pytest.fixture
def screenshot_path():
    """``screenshot_path("name.png")``: where to save a screenshot (var/ is not committed)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return lambda name: SCREENSHOTS / name


@pytest.fixture
def log_in(live_server):
    """``log_in(page, username, password, next_path)``: sign in through the Django admin login
    form (session cookie), landing on ``next_path``."""

    def sign_in(page, username: str, password: str, next_path: str = "/admin/") -> None:
        page.goto(f"{live_server.url}/admin/login/?{urlencode({'next': next_path})}")
        page.fill("#id_username", username)
        page.fill("#id_password", password)
        page.click("input[type=submit]")
        page.wait_for_load_state("load")

    return sign_in
