"""Playwright driving Debian's Chromium and Firefox ESR (scripts/apt-packages.txt): one browser per
test module.

Firefox is driven over WebDriver BiDi (Playwright's `moz-firefox` channel), which Debian's
firefox-esr speaks natively; Playwright's own patched Firefox build is a download no registry
serves. Playwright 1.65 asks BiDi for a command Firefox ESR 153 lacks
(emulation.setMediaFeaturesOverride), hence pyproject's playwright<1.65."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FIREFOX = "/usr/bin/firefox-esr"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Screenshots of each page go here when set (for the notes; tests do not need them).
SHOTS = os.environ.get("STRATA_CONSOLE_SHOTS")


def browser_fixture() -> Iterator:
    """A launched Chromium (installed by scripts/install.sh: a missing one fails, never skips)."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: scripts/install.sh installs it"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def firefox_fixture() -> Iterator:
    """A launched Firefox ESR (installed by scripts/install.sh: a missing one fails, never skips)."""
    assert Path(FIREFOX).exists(), f"{FIREFOX} is missing: scripts/install.sh installs it"
    with sync_playwright() as playwright:
        browser = playwright.firefox.launch(channel="moz-firefox", executable_path=FIREFOX, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)


def sign_in(page, endpoint: str, access_key: str = "test", secret_key: str = "test") -> None:
    page.goto(endpoint + "/_strata/console/")
    page.fill("#access_key", access_key)
    page.fill("#secret_key", secret_key)
    page.click("form button[type=submit]")
    page.wait_for_url("**/_strata/console/s3")


def signed_in_page(browser, endpoint: str) -> Iterator:
    """A page of a fresh browser context (its own cookies), signed in to the console at `endpoint`."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    sign_in(page, endpoint)
    yield page
    context.close()
