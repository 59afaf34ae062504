"""Browser tests: Debian's Chromium, driven by Playwright, against pytest-django's live
server (a real HTTP server in a thread, on the test database).

They skip on a machine without Chromium and fail under REZCOURSE_REQUIRE_SERVICES=1
(CI installs it). Each test gets a fresh browser context (no cookies) with a tablet's
viewport; a page that logs a JavaScript error or a Content-Security-Policy violation
fails its test.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from bench.browser import VIEWPORT, chromium_problem, launched, sign_in
from courses.models import TreatmentCourse
from notifications.services import alerts_sweep
from tests.conftest import service_unavailable


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    problem = chromium_problem()
    if problem:
        service_unavailable(f"browser tests: {problem}")
    # Playwright's sync API keeps an asyncio event loop in this thread; Django then
    # refuses database calls from the test ("async context"). Nothing async touches
    # the database here: the test's own calls run between browser steps, and the live
    # server answers from its own threads.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with launched() as running:
            yield running
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class Tab:
    """A browser context and its page, with the live server's address."""

    def __init__(self, browser: Any, base_url: str, *, javascript: bool = True) -> None:
        self.base_url = base_url
        self.context = browser.new_context(
            viewport=VIEWPORT,
            locale="en-GB",
            timezone_id="Europe/Berlin",
            base_url=base_url,
            java_script_enabled=javascript,
            accept_downloads=True,
        )
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("pageerror", lambda error: self.problems.append(f"JS error: {error}"))
        self.page.on("console", self._console)

    def _console(self, message: Any) -> None:
        text = message.text
        if "Content Security Policy" in text or "Refused to" in text:
            self.problems.append(f"CSP: {text}")

    def sign_in(self, user: Any, path: str = "/") -> None:
        sign_in(self.page, self.base_url, user.username, "pw", path)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any, live_server: Any) -> Iterator[Callable[..., Tab]]:
    """tab(javascript=True) -> a fresh browser tab on the live server."""
    opened: list[Tab] = []

    def open_(javascript: bool = True) -> Tab:
        opened.append(Tab(browser, live_server.url, javascript=javascript))
        return opened[-1]

    yield open_
    problems = [p for t in opened for p in t.problems]
    for t in opened:
        t.close()
    assert problems == [], problems


@pytest.fixture
def started_course(make_course: Callable[..., TreatmentCourse]) -> Callable[..., TreatmentCourse]:
    """started_course(team, actor, days_ago=14) -> a course (group A, ALL-REZ BFM 90)
    confirmed that many days ago with nothing recorded since, and the alert sweep run
    now: its first block is overdue and its HSCT referral missing."""

    def make(team: Any, actor: Any, days_ago: int = 14, **kwargs: Any) -> TreatmentCourse:
        now = timezone.now()
        with time_machine.travel(now - timedelta(days=days_ago), tick=False):
            course = make_course(team, actor, **kwargs)
        alerts_sweep(timezone.now())
        return TreatmentCourse.objects.get(pk=course.pk)

    return make
