"""Small presentation helpers for the web app's templates."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import template
from django.utils import timezone

from courses.units import fraction_display
from notifications.models import AlertKind
from web.timeline import step_status

register = template.Library()

KIND_LABELS = dict(AlertKind.choices)
# Names a clinician reads; a state or move without an entry is shown humanized.
LABELS = {
    "post_remission_chemo": "Post-remission chemotherapy",
    "hsct_workup": "HSCT work-up",
    "take_off_protocol": "Take off protocol",
    "start_hsct_workup": "Start HSCT work-up",
    "isolated_bm": "Isolated bone marrow",
    "isolated_em": "Isolated extramedullary",
    "hsct_referral": "HSCT referral",
    "hsct": "HSCT",
    "mrd": "MRD",
    "needs_review": "Needs review",
    "follow_up_contact": "Follow-up contact",
    "follow-up": "Follow-up",
    "treatment_failure_alternative_therapy": "Treatment failure, alternative therapy",
    "alive_in_cr": "Alive in complete remission",
}


@register.filter
def humanize(value: Any) -> str:
    """``post_remission_chemo`` -> "Post-remission chemotherapy"; ``start_induction``
    -> "Start induction"."""
    text = str(value or "")
    return LABELS.get(text) or text.replace("_", " ").capitalize()


@register.filter
def move_label(name: str) -> str:
    return humanize(name)


@register.filter
def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, humanize(kind))


@register.filter
def days_word(n: int) -> str:
    return f"{n} day{'' if abs(int(n)) == 1 else 's'}"


@register.filter
def days_until(day: date | None, today: date) -> int | None:
    return None if day is None else (day - today).days


@register.simple_tag
def query(params: dict[str, str], **changes: Any) -> str:
    """``?a=1&b=2`` from ``params`` with ``changes`` applied (empty values dropped)."""
    merged = {**params, **changes}
    kept = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(kept) if kept else "?"


@register.filter
def get_item(mapping: dict[Any, Any], key: Any) -> Any:
    return mapping.get(key)


@register.filter
def add_days(day: date, n: int) -> date:
    return day + timedelta(days=int(n))


@register.filter
def iso_datetime(value: str | None) -> str:
    """An ISO time from the API's shapes (UTC) as the team reads it: "24 Nov 2026 11:00",
    in the site's time zone."""
    if not value:
        return ""
    return f"{timezone.localtime(datetime.fromisoformat(value)):%-d %b %Y %H:%M}"


@register.filter
def abs_value(n: int) -> int:
    return abs(int(n))


@register.filter
def step_words(step: Any, today: date) -> str:
    """What a step's status means today ("overdue 3 days", "done 12 Nov, ...")."""
    return step_status(step, today)[0]


@register.filter
def mrd_fraction(value: float | None) -> str:
    """A stored MRD fraction in both units (courses.units): "2×10⁻³ = 0.2 %"."""
    return fraction_display(value)


@register.filter
def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


@register.filter
def step_delay(step: Any, today: date) -> str:
    """Days later than the protocol's plan: for a step done, when it was done; for an
    open step past its due date, counted to today ("so far")."""
    if step.status in ("skipped", "cancelled"):
        return "—"
    if step.status == "done":
        days = (step.done_on - step.planned_on).days
        suffix = ""
    else:
        days = (max(step.due_on, today) - step.planned_on).days
        suffix = " so far" if today > step.due_on else ""
    if days > 0:
        return f"+{days_word(days)}{suffix}"
    if days < 0:
        return f"{days_word(-days)} early"
    return "on plan"


@register.filter
def day(value: date | None, today: date) -> str:
    """E.g. "8 Dec", or "8 Dec 2025" when the year is not this one (a worklist spans years)."""
    if value is None:
        return ""
    return f"{value.day} {value:%b}" if value.year == today.year else f"{value.day} {value:%b %Y}"
