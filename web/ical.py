"""The personal iCalendar feed: one all-day event per open step.

An event carries only the pseudonymous course reference, the step's label and a link
to the course page (which asks for sign-in): calendar apps sync feeds to phones and
third-party servers, so nothing else about the course may travel with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from icalendar import Calendar, Event

from courses.models import PlannedStep

PRODID = "-//rezcourse//due steps//EN"


def feed(steps: Iterable[PlannedStep], *, course_url: Callable[[int], str], now: datetime) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("x-wr-calname", "rezcourse: due steps")
    for step in steps:
        event = Event()
        # Stable per step: a rescheduled step moves in the calendar, never duplicates.
        event.add("uid", f"step-{step.pk}@rezcourse")
        event.add("dtstamp", now)
        event.add("dtstart", step.due_on)
        event.add("dtend", step.due_on + timedelta(days=1))
        event.add("summary", f"{step.course.patient.reference}: {step.label}")
        event.add("url", course_url(step.course_id))
        event.add("transp", "TRANSPARENT")
        calendar.add_component(event)
    return calendar.to_ical()
