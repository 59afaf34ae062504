"""The calendar of due steps, and the personal iCalendar feed.

The feed is fetched by calendar apps that cannot sign in, so its URL carries a secret
token. Only the token's hash is stored; the token is shown once, right after it is
made. Rotating replaces it and revoking deletes it: the old URL is a 404 from that
moment on. The feed shows the steps of the teams the person belongs to at the moment
it is fetched, so leaving a team also takes its courses out of the feed.
"""

from __future__ import annotations

from datetime import date, timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from teams.selectors import team_ids_for
from web import ical, selectors, services
from web.models import CalendarFeed
from web.views.base import page

WEEKS_SHOWN = 6
# The feed covers what a calendar app needs: recent misses and the months ahead.
FEED_PAST_DAYS = 30
FEED_FUTURE_DAYS = 365


class WeekForm(forms.Form):
    week = forms.DateField(required=False)
    team = forms.TypedChoiceField(required=False, coerce=int, empty_value=None, label="Team")

    def __init__(self, *args, teams, **kwargs) -> None:  # noqa: ANN001, ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [("", "All my teams")] + [(t.pk, t.name) for t in teams]


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _context(request: HttpRequest, params: dict) -> dict:
    teams = [m.team for m in selectors.memberships(request.user)]
    form = WeekForm(params, teams=teams)
    if not form.is_valid():
        if "team" in form.errors:
            raise Http404
        form = WeekForm({}, teams=teams)
        form.is_valid()
    team_ids = selectors.team_in_scope(request.user, form.cleaned_data.get("team"))
    today = selectors.today_for([t for t in teams if t.pk in team_ids], timezone.now())
    first = _monday(form.cleaned_data.get("week") or today)
    last = first + timedelta(weeks=WEEKS_SHOWN) - timedelta(days=1)
    steps = selectors.open_steps(team_ids, due_from=first, due_to=last)
    weeks = []
    for index in range(WEEKS_SHOWN):
        monday = first + timedelta(weeks=index)
        sunday = monday + timedelta(days=6)
        weeks.append(
            {
                "monday": monday,
                "sunday": sunday,
                "current": monday <= today <= sunday,
                "steps": [s for s in steps if monday <= s.due_on <= sunday],
            }
        )
    overdue = []
    if first <= today:
        overdue = selectors.open_steps(team_ids, due_to=min(first, today) - timedelta(days=1))
    team = form.cleaned_data.get("team")
    return {
        "nav": "calendar",
        "today": today,
        "weeks": weeks,
        "overdue": overdue,
        "several_teams": len(teams) > 1,
        "teams": teams,
        "team": team,
        "previous": first - timedelta(weeks=WEEKS_SHOWN),
        "next": first + timedelta(weeks=WEEKS_SHOWN),
        "this_week": _monday(today),
        "feed": CalendarFeed.objects.filter(user=request.user).first(),
    }


@require_safe
@login_required
def calendar(request: HttpRequest) -> HttpResponse:
    return page(request, "web/calendar.html", _context(request, request.GET))


@require_POST
@login_required
def feed_manage(request: HttpRequest) -> HttpResponse:
    action = request.POST.get("action")
    if action == "rotate":
        token = services.feed_rotate(request.user, timezone.now())
        # Shown once, in this answer only (not a redirect): the token is stored nowhere,
        # not even in the session.
        context = _context(request, {})
        context["new_feed_url"] = request.build_absolute_uri(
            reverse("web:calendar-feed", args=[token])
        )
        response = page(request, "web/calendar.html", context)
        response["Cache-Control"] = "no-store"
        return response
    if action == "revoke":
        services.feed_revoke(request.user)
        messages.success(request, "Calendar address revoked; it has stopped working.")
        return redirect(reverse("web:calendar") + "#feed")
    raise Http404


@require_safe
def feed(request: HttpRequest, token: str) -> HttpResponse:
    """No session here: the token is the credential. An unknown, rotated or revoked
    token is a plain 404, the same for all three."""
    try:
        subscription = CalendarFeed.objects.select_related("user").get(
            token_hash=services.feed_token_hash(token), user__is_active=True
        )
    except CalendarFeed.DoesNotExist as exc:
        raise Http404 from exc
    user = subscription.user
    now = timezone.now()
    today = timezone.localdate(now)
    steps = selectors.open_steps(
        team_ids_for(user),
        due_from=today - timedelta(days=FEED_PAST_DAYS),
        due_to=today + timedelta(days=FEED_FUTURE_DAYS),
    )
    body = ical.feed(
        steps,
        course_url=lambda pk: request.build_absolute_uri(reverse("web:course", args=[pk])),
        now=now,
    )
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = 'inline; filename="rezcourse.ics"'
    # The URL is a secret: keep it out of shared caches and referrers.
    response["Cache-Control"] = "private, no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
