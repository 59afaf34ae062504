"""The course page and the actions taken on it: confirm the stratification or the HSCT
decision, move the course, and act on its alerts.

Each action is a POST to its own URL. On success it redirects back to the course page
(at the part that changed); when the service refuses, the course page is shown again
with the form as it was typed, the field errors beside their fields, or the refusal
and the moves allowed now (400 / 409, as the API answers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from courses import services as course_services
from courses.models import ACTIVE_STATES, OffProtocolReason, TreatmentCourse
from notifications import services as alert_services
from notifications.models import UNRESOLVED, Alert, AlertKind, AlertState
from notifications.selectors import alerts_for
from web import selectors, timeline
from web.errors import Outcome, Refusal, submit
from web.forms import ALERT_FORMS, ConfirmForm, ConfirmHsctForm, RestratifyForm, TransitionForm
from web.templatetags.web import humanize, move_label
from web.views.base import page, writable_course

# Which alert controls to show in each state: the same answer notifications.services
# gives (its _refuse); the service still decides, and a refusal is shown if they differ.
ALERT_ACTIONS = {
    AlertState.OPEN: ("acknowledge", "snooze", "resolve"),
    AlertState.ACKNOWLEDGED: ("snooze", "resolve"),
    AlertState.RESOLVED: (),
}
ALERT_SERVICES = {
    "acknowledge": alert_services.alert_acknowledge,
    "snooze": alert_services.alert_snooze,
    "resolve": alert_services.alert_resolve,
}
DONE_WORDS = {"acknowledge": "acknowledged", "snooze": "snoozed", "resolve": "resolved"}


def course_url(course_id: int, anchor: str = "") -> str:
    url = reverse("web:course", args=[course_id])
    return f"{url}#{anchor}" if anchor else url


def _confirm_form(course: TreatmentCourse, data: Any = None) -> ConfirmForm:
    return ConfirmForm(
        data,
        prefix="confirm",
        groups=selectors.protocol_groups(course.protocol_slug),
        initial={"risk_group": course.proposed_group},
    )


def _transition_form(
    course: TreatmentCourse, key: str, name: str = "", requires: tuple[str, ...] = (), data=None
) -> TransitionForm:
    """One form per allowed move (``key`` "t-<name>") and one for any other move
    ("t-other"). Every form accepts every move name: which one is possible now is the
    service's call, and its refusal is what the person sees."""
    choices = [(n, move_label(n)) for n in selectors.transition_names()]
    form = TransitionForm(
        data,
        prefix=key,
        transitions=choices,
        requires=requires,
        initial={
            "transition": name,
            "version": course.version,
            "on": course.patient.team.today(timezone.now()),
        },
    )
    if name:
        form.fields["transition"].widget = forms.HiddenInput()
    else:
        form.fields["transition"].label = "Move to try"
    return form


def course_context(
    request: HttpRequest,
    course: TreatmentCourse,
    *,
    bound: dict[str, forms.Form] | None = None,
    refusal: Refusal | None = None,
    refusal_at: str = "",
) -> dict[str, Any]:
    bound = bound or {}
    team = course.patient.team
    today = team.today(timezone.now())
    writable = selectors.can_write(request.user, team.pk)
    active = course.state in ACTIVE_STATES
    steps = selectors.course_steps(course)
    alerts = selectors.course_alerts(course)
    kind_labels = dict(AlertKind.choices)

    cards = []
    for alert in alerts:
        actions = []
        if writable and active:
            for action in ALERT_ACTIONS[alert.state]:
                key = f"alert-{alert.pk}-{action}"
                actions.append((action, bound.get(key) or ALERT_FORMS[action](prefix=key)))
        cards.append(
            {
                "alert": alert,
                "label": kind_labels.get(alert.kind, alert.kind),
                "actions": actions,
                "refusal": refusal if refusal_at == f"alert-{alert.pk}" else None,
            }
        )

    moves, other_move, confirm, hsct, restratify = [], None, None, None, None
    stale = course.decision_stale_fields
    outdated = selectors.decision_outdated(course)
    awaiting = selectors.awaiting_confirmation(course)
    unconfirmed = course.decision is not None and not course.decision.is_confirmed
    if writable and active and unconfirmed and not stale and not outdated:
        # A registered course, or a re-stratified one awaiting confirmation.
        confirm = bound.get("confirm") or _confirm_form(course)
    if writable and active and (stale or outdated):
        restratify = bound.get("restratify") or RestratifyForm(prefix="restratify")
    hsct_decision = course_services.hsct_decision_summary(course)
    undecided = course.hsct_indicated is None or hsct_decision["review"] is not None
    if writable and active and course.start_date and undecided:
        hsct = bound.get("hsct") or ConfirmHsctForm(
            prefix="hsct",
            initial={"hsct_indicated": {True: "yes", False: "no"}.get(course.hsct_proposed)},
        )
    if writable and active:
        options = selectors.transition_options(course)
        for option in options:
            key = f"t-{option.name}"
            form = bound.get(key) or _transition_form(course, key, option.name, option.requires)
            moves.append({"option": option, "form": form, "key": key})
        allowed = {o.name for o in options}
        others = [n for n in selectors.transition_names() if n not in allowed]
        if others:
            other_move = bound.get("t-other") or _transition_form(course, "t-other")
            other_move.fields["transition"].choices = [(n, move_label(n)) for n in others]

    return {
        "nav": "worklist",
        "course": course,
        "team": team,
        "today": today,
        "writable": writable,
        "active": active,
        "decision": course.decision,
        "summary": selectors.decision_summary(course.decision) if course.decision else None,
        "history": selectors.decision_history(course),
        "stale": stale,
        "outdated": outdated,
        "awaiting": awaiting,
        "restratify_form": restratify,
        "steps": steps,
        "cards": cards,
        "open_alerts": sum(1 for a in alerts if a.state in UNRESOLVED),
        "gantt": timeline.build(
            steps, alerts, today=today, course_start=course.start_date, alert_labels=kind_labels
        ),
        "records": selectors.course_records(course),
        "takes_follow_up": not active
        and course.off_protocol_reason != OffProtocolReason.ENTERED_IN_ERROR,
        "later_courses": list(course.later_courses.select_related("relapse")),
        "confirm_form": confirm,
        "hsct_form": hsct,
        "hsct": hsct_decision,
        "moves": moves,
        "other_move": other_move,
        "refusal": refusal,
        "refusal_at": refusal_at,
    }


def _again(
    request: HttpRequest, course: TreatmentCourse, outcome: Outcome, **context: Any
) -> HttpResponse:
    # Reload: the service may have refused because the course changed under us.
    course = selectors.course_or_404(request.user, course.pk)
    return page(
        request,
        "web/course.html",
        course_context(request, course, refusal=outcome.refusal, **context),
        outcome=outcome,
    )


@require_safe
@login_required
def course_page(request: HttpRequest, pk: int) -> HttpResponse:
    course = selectors.course_or_404(request.user, pk)
    return page(request, "web/course.html", course_context(request, course))


def _act(
    request: HttpRequest,
    course: TreatmentCourse,
    form: forms.Form,
    call: Callable[[dict[str, Any]], Any],
    done: Callable[[Any], tuple[str, str]],
    *,
    key: str,
    at: str,
) -> HttpResponse:
    """An action posted from the course page: back to the course at ``done``'s anchor
    with its message, or the course page again with ``form`` (as ``key``) as typed and
    the refusal shown at ``at``."""
    outcome = submit(form, call)
    if outcome.ok:
        message, anchor = done(outcome.value)
        messages.success(request, message)
        return redirect(course_url(course.pk, anchor))
    return _again(request, course, outcome, bound={key: form}, refusal_at=at)


@require_POST
@login_required
def confirm_stratification(request: HttpRequest, pk: int) -> HttpResponse:
    course = writable_course(request, pk)
    now = timezone.now()
    return _act(
        request,
        course,
        _confirm_form(course, request.POST),
        lambda data: course_services.course_confirm_stratification(
            course, **data, actor=request.user, now=now
        ),
        lambda done: (f"Group {done.risk_group} confirmed; the schedule follows it.", "timeline"),
        key="confirm",
        at="stratification",
    )


@require_POST
@login_required
def restratify(request: HttpRequest, pk: int) -> HttpResponse:
    course = writable_course(request, pk)
    now = timezone.now()
    return _act(
        request,
        course,
        RestratifyForm(request.POST, prefix="restratify"),
        lambda data: course_services.course_restratify(course, **data, actor=request.user, now=now),
        lambda done: (
            "Stratified again: "
            + (
                f"group {done.proposed_group} proposed"
                if done.proposed_group
                else "no group proposed (needs review)"
            )
            + "; confirm it to apply it.",
            "stratification",
        ),
        key="restratify",
        at="stratification",
    )


@require_POST
@login_required
def confirm_hsct(request: HttpRequest, pk: int) -> HttpResponse:
    course = writable_course(request, pk)
    now = timezone.now()
    return _act(
        request,
        course,
        ConfirmHsctForm(request.POST, prefix="hsct"),
        lambda data: course_services.course_confirm_hsct(
            course, **data, actor=request.user, now=now
        ),
        lambda done: ("HSCT decision recorded; the schedule follows it.", "timeline"),
        key="hsct",
        at="hsct",
    )


@require_POST
@login_required
def move(request: HttpRequest, pk: int) -> HttpResponse:
    course = writable_course(request, pk)
    key = request.POST.get("form_id", "")
    if not key.startswith("t-"):
        key = "t-other"
    name = "" if key == "t-other" else key[2:]
    option = next((o for o in selectors.transition_options(course) if o.name == name), None)
    form = _transition_form(course, key, name, option.requires if option else (), request.POST)
    now = timezone.now()
    return _act(
        request,
        course,
        form,
        lambda data: course_services.course_transition(course, **data, actor=request.user, now=now),
        lambda moved: (
            f"{move_label(form.cleaned_data['transition'])}: the course is now "
            f"{humanize(moved.state).lower()}.",
            "moves",
        ),
        key=key,
        at="moves",
    )


@require_POST
@login_required
def alert_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    if action not in ALERT_SERVICES:
        raise Http404
    try:
        alert = alerts_for(request.user).get(pk=pk)
    except Alert.DoesNotExist as exc:
        raise Http404 from exc
    course = writable_course(request, alert.course_id)
    key = f"alert-{alert.pk}-{action}"
    now = timezone.now()
    return _act(
        request,
        course,
        ALERT_FORMS[action](request.POST, prefix=key),
        lambda data: ALERT_SERVICES[action](alert, **data, actor=request.user, now=now),
        lambda done: (f"Alert {DONE_WORDS[action]}.", f"alert-{alert.pk}"),
        key=key,
        at=f"alert-{alert.pk}",
    )
