"""Outcomes: the event-free survival report of the API, as a page and a picture."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe

from web import selectors
from web.views.base import page


class OutcomesForm(forms.Form):
    team = forms.TypedChoiceField(label="Team", required=False, coerce=int, empty_value=None)
    protocol = forms.ChoiceField(label="Protocol", required=False)

    def __init__(self, *args: Any, teams: list[Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All my teams")] + [(t.pk, t.name) for t in teams]
        self.fields["protocol"].choices = selectors.protocol_choices()


def _report(request: HttpRequest) -> tuple[OutcomesForm, dict[str, Any], bool]:
    teams = [m.team for m in selectors.memberships(request.user)]
    form = OutcomesForm({"protocol": selectors.DEFAULT_PROTOCOL, **request.GET.dict()}, teams=teams)
    if not form.is_valid():
        if "team" in form.errors:
            raise Http404  # another team's id: "not found", as everywhere
        form = OutcomesForm({"protocol": selectors.DEFAULT_PROTOCOL}, teams=teams)
        form.is_valid()
    team = form.cleaned_data.get("team")
    selectors.team_in_scope(request.user, team)
    protocol = form.cleaned_data.get("protocol") or selectors.DEFAULT_PROTOCOL
    report = selectors.outcomes(request.user, team=team, protocol=protocol, now=timezone.now())
    return form, report, len(teams) > 1


@require_safe
@login_required
def outcomes(request: HttpRequest) -> HttpResponse:
    form, report, several = _report(request)
    params = {"protocol": report["protocol"]}
    if report["team"]:
        params["team"] = report["team"]
    context = {
        "nav": "outcomes",
        "form": form,
        "report": report,
        "several_teams": several,
        "params": params,
        "courses_counted": sum(g["n"] for g in report["groups"]),
    }
    return page(request, "web/outcomes.html", context)


@require_safe
@login_required
def outcomes_plot(request: HttpRequest) -> HttpResponse:
    _, report, _ = _report(request)
    response = HttpResponse(selectors.render_outcomes(report, "png"), content_type="image/png")
    response["Cache-Control"] = "private, max-age=60"
    return response
