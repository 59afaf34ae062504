"""Fixtures for the web app's view tests: signed-in clients, a course with real alerts
(raised by the real sweep), and small readers of the HTML the pages answer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from courses.models import TreatmentCourse
from notifications.services import alerts_sweep

NOW = datetime.fromisoformat("2026-11-24T10:00:00+00:00")


@pytest.fixture(autouse=True)
def frozen_time(time_machine: Any) -> datetime:
    time_machine.move_to(NOW, tick=False)
    return timezone.now()


@pytest.fixture
def web() -> Callable[[Any], Client]:
    """web(user) -> a Django test client signed in as ``user`` (a session, as a browser
    has; force_login skips the sign-in form and its throttling)."""

    def make(user: Any) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def started_course(
    time_machine: Any, make_course: Callable[..., TreatmentCourse]
) -> Callable[..., TreatmentCourse]:
    """started_course(team, actor, days_ago=14, **relapse) -> a course confirmed that
    many days ago, its alerts raised by the sweep as of now. The default (group A of
    ALL-REZ BFM 90, started 14 days ago, nothing recorded) has a block overdue and the
    HSCT referral missing."""

    def make(team: Any, actor: Any, days_ago: int = 14, **kwargs: Any) -> TreatmentCourse:
        time_machine.move_to(NOW - timedelta(days=days_ago), tick=False)
        course = make_course(team, actor, **kwargs)
        time_machine.move_to(NOW, tick=False)
        alerts_sweep(timezone.now())
        return TreatmentCourse.objects.get(pk=course.pk)

    return make


class Page(HTMLParser):
    """What a test needs to know about a page: its forms (method, action, fields),
    links, ids, scripts and styles, and its text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.inline_scripts = 0
        self.scripts: list[str] = []
        self.style_elements = 0
        self.style_attributes: list[str] = []
        self.event_handlers: list[str] = []
        self.text_parts: list[str] = []
        self._in_script = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "id" in a and a["id"]:
            self.ids.add(a["id"])
        if "style" in a:
            self.style_attributes.append(tag)
        self.event_handlers += [k for k in a if k.startswith("on")]
        if tag == "form":
            self.forms.append(
                {
                    "method": (a.get("method") or "get").lower(),
                    "action": a.get("action"),
                    "fields": [],
                }
            )
        elif tag in ("input", "select", "textarea", "button") and self.forms:
            self.forms[-1]["fields"].append(a.get("name"))
            if a.get("type") != "hidden":
                self.forms[-1].setdefault("visible", []).append(a.get("name"))
        elif tag == "a" and a.get("href"):
            self.links.append(a["href"])
        elif tag == "script":
            if a.get("src"):
                self.scripts.append(a["src"])
            else:
                self.inline_scripts += 1
            self._in_script = True
        elif tag == "style":
            self.style_elements += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text_parts.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def form(self, action: str, method: str = "get") -> dict[str, Any]:
        """The one form posting to ``action`` with ``method``."""
        found = [f for f in self.forms if f["action"] == action and f["method"] == method]
        assert len(found) == 1, (action, method, self.forms)
        return found[0]

    def post_forms(self) -> list[dict[str, Any]]:
        return [f for f in self.forms if f["method"] == "post"]

    def write_forms(self) -> list[dict[str, Any]]:
        """Forms that change something (every POST form but signing out)."""
        return [f for f in self.post_forms() if not (f["action"] or "").endswith("/logout/")]


@pytest.fixture
def parse() -> Callable[[Any], Page]:
    def read(response: Any) -> Page:
        return Page(response.content.decode())

    return read
