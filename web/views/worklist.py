"""The worklist: the team's morning view, and its CSV export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from config.renderers import csv_response
from web import selectors
from web.templatetags.web import humanize, kind_label
from web.views.base import page


class FilterForm(forms.Form):
    team = forms.TypedChoiceField(label="Team", required=False, coerce=int, empty_value=None)
    protocol = forms.ChoiceField(label="Protocol", required=False)
    risk_group = forms.ChoiceField(label="Risk group", required=False)
    kind = forms.ChoiceField(label="Alert kind", required=False)
    q = forms.CharField(
        label="Reference contains",
        required=False,
        max_length=40,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )

    def __init__(self, *args: Any, teams: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = selectors.filter_choices()
        self.fields["team"].choices = [("", "All my teams")] + [(t.pk, t.name) for t in teams]
        if len(teams) < 2:
            # Not asked (one team), but still checked: another team's id is a 404.
            self.fields["team"].widget = forms.HiddenInput()
        self.fields["protocol"].choices = [("", "All protocols")] + choices["protocol"]
        self.fields["risk_group"].choices = [("", "All groups")] + choices["risk_group"]
        self.fields["kind"].choices = [("", "Any alert")] + choices["kind"]

    def filters(self) -> selectors.WorklistFilters:
        data = self.cleaned_data if self.is_valid() else {}
        return selectors.WorklistFilters(
            team=data.get("team"),
            risk_group=data.get("risk_group", ""),
            kind=data.get("kind", ""),
            protocol=data.get("protocol", ""),
            q=(data.get("q") or "").strip(),
        )


def _load(request: HttpRequest, *, limit: int | None) -> dict[str, Any]:
    memberships = selectors.memberships(request.user)
    teams = [m.team for m in memberships]
    form = FilterForm(request.GET or None, teams=teams)
    if request.GET and not form.is_valid() and "team" in form.errors:
        # A team id that is not one of the requester's: "not found", as in the API.
        raise Http404
    filters = form.filters() if request.GET else selectors.WorklistFilters()
    team_ids = selectors.team_in_scope(request.user, filters.team)
    shown = [t for t in teams if t.pk in team_ids]
    now = timezone.now()
    today = selectors.today_for(shown, now)
    dates = {t.pk: t.today(now) for t in shown}
    return {
        "form": form,
        "filters": filters,
        "teams": {t.pk: t for t in teams},
        "several_teams": len(teams) > 1,
        "worklist": selectors.worklist(team_ids, filters, today, limit=limit, dates=dates),
        "today": today,
    }


@require_safe
@login_required
def worklist(request: HttpRequest) -> HttpResponse:
    context = _load(request, limit=selectors.SECTION_LIMIT)
    context["nav"] = "worklist"
    context["params"] = context["filters"].as_query()
    return page(request, "web/worklist.html", context)


CSV_HEADER = [
    "section",
    "course",
    "reference",
    "team",
    "protocol",
    "risk_group",
    "state",
    "severity",
    "alerts",
    "step",
    "due_on",
    "note",
]


def _course_cells(course: Any) -> dict[str, Any]:
    return {
        "course": course.pk,
        "reference": course.patient.reference,
        "team": course.patient.team.name,
        "protocol": course.protocol_slug,
        "risk_group": course.risk_group or course.proposed_group,
        "state": course.state,
    }


def _csv_rows(context: dict[str, Any]) -> Iterator[list[Any]]:
    """Every row of the page's sections, one CSV row each (cells by CSV_HEADER)."""
    teams = context["teams"]
    work = context["worklist"]
    rows: list[dict[str, Any]] = []
    for row in work.attention.rows:
        rows.append(
            {
                "section": "needs attention",
                "course": row["course"],
                "reference": row["course_reference"],
                "team": teams[row["team"]].name,
                "protocol": row["protocol"],
                "risk_group": row["risk_group"],
                "state": row["state"],
                "severity": row["severity"],
                "alerts": "; ".join(
                    f"{kind_label(a['kind'])} ({a['severity']})" for a in row["alerts"]
                ),
                "step": row["next_step"],
                "due_on": row["next_step_due_on"],
                "note": f"oldest condition since {row['oldest_since']}",
            }
        )
    for step in work.due.rows:
        late = (work.today - step.due_on).days
        rows.append(
            {
                "section": "due",
                **_course_cells(step.course),
                "step": step.label,
                "due_on": step.due_on,
                "note": f"overdue {late} days" if late > 0 else "",
            }
        )
    for course in work.review.rows:
        status = humanize(course.decision.status) if course.decision else ""
        rows.append({"section": "needs review", **_course_cells(course), "note": status})
    for relapse in work.unfinished.rows:
        rows.append(
            {
                "section": "course not opened",
                "reference": relapse.patient.reference,
                "team": relapse.patient.team.name,
                "note": f"relapse of {relapse.relapse_date}",
            }
        )
    for row in rows:
        yield [row.get(column, "") for column in CSV_HEADER]


@require_safe
@login_required
def worklist_csv(request: HttpRequest) -> HttpResponse:
    context = _load(request, limit=None)
    return csv_response(
        filename=f"worklist-{context['today']}.csv", header=CSV_HEADER, rows=_csv_rows(context)
    )
