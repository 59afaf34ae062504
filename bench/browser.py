"""The browser harness shared by the browser tests (tests/browser/) and the screenshots
(bench/screenshots.py): Debian's Chromium driven by Playwright.

No browser is downloaded (``playwright install`` is never run): Playwright launches the
system's /usr/bin/chromium (``REZCOURSE_CHROMIUM`` overrides the path). .ci/run
installs it with apt when it is missing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

CHROMIUM = os.environ.get("REZCOURSE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# A tablet held landscape: the size the web app is designed for at the bedside.
VIEWPORT = {"width": 1280, "height": 900}


def chromium_problem() -> str | None:
    """Why the harness cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(
        CHROMIUM
    ):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (requirements-dev.txt)"
    return None


@contextmanager
def launched() -> Iterator[Any]:
    """A running Chromium (Playwright ``Browser``), closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Any, base_url: str, username: str, password: str, path: str = "/") -> None:
    """Open ``path`` (the sign-in page comes first) and sign in through the form."""
    page.goto(base_url + path)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
