"""Registering a patient, the relapse and the course: three short pages.

1. the patient (a member of one team is never asked for the team);
2. the relapse;
3. the course: choose the protocol, see what the engine proposes and why (nothing is
   stored until you confirm), then confirm the group — or leave it for review.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from courses import services as course_services
from web import selectors, services
from web.errors import Outcome, submit
from web.forms import CourseOpenForm, PatientForm, RelapseForm
from web.views.base import page, require_write
from web.views.course import course_url


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def patient_new(request: HttpRequest) -> HttpResponse:
    teams = selectors.writable_teams(request.user)
    if not teams:
        raise PermissionDenied("Your role in your teams does not allow registering patients.")
    form = PatientForm(request.POST or None, teams=teams)
    outcome = Outcome()
    if request.method == "POST":
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: course_services.patient_create(team_id=form.team_id(), data=data, now=now),
        )
        if outcome.ok:
            messages.success(request, f"Patient {outcome.value.reference} registered.")
            return redirect("web:relapse-new", pk=outcome.value.pk)
    context = {"nav": "register", "form": form, "refusal": outcome.refusal, "step": 1}
    return page(request, "web/patient_new.html", context, outcome=outcome)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def relapse_new(request: HttpRequest, pk: int) -> HttpResponse:
    patient = selectors.patient_or_404(request.user, pk)
    require_write(request.user, patient.team_id)
    form = RelapseForm(request.POST or None)
    outcome = Outcome()
    if request.method == "POST":
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: course_services.relapse_create(patient=patient, data=data, now=now),
        )
        if outcome.ok:
            messages.success(request, "Relapse recorded.")
            return redirect("web:course-new", pk=outcome.value.pk)
    context = {
        "nav": "register",
        "patient": patient,
        "relapses_recorded": selectors.relapses_recorded(patient),
        "form": form,
        "refusal": outcome.refusal,
        "step": 2,
    }
    return page(request, "web/relapse_new.html", context, outcome=outcome)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def course_new(request: HttpRequest, pk: int) -> HttpResponse:
    relapse = selectors.relapse_or_404(request.user, pk)
    require_write(request.user, relapse.patient.team_id)
    existing = getattr(relapse, "course", None)
    if existing is not None:
        messages.info(request, "This relapse already has a course.")
        return redirect(course_url(existing.pk))
    protocols = selectors.protocol_choices()
    data = request.POST if request.method == "POST" else request.GET
    slug = data.get("protocol") or ""
    if slug not in dict(protocols):
        slug = ""
    preview = selectors.stratification_preview(relapse, slug) if slug else None
    groups = selectors.protocol_groups(slug) if slug else []
    form = CourseOpenForm(
        request.POST if request.method == "POST" else None,
        protocols=protocols,
        groups=groups,
        implausible=preview is not None and selectors.asks_implausible_confirmation(preview),
        initial={
            "protocol": slug or protocols[0][0],
            "risk_group": preview.risk_group if preview else "",
        },
    )
    outcome = Outcome()
    if request.method == "POST":
        confirm = request.POST.get("action") != "review"
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: services.course_open(
                relapse,
                protocol_slug=data["protocol"],
                risk_group=data["risk_group"] if confirm else None,
                reason=data["reason"],
                confirm_implausible=data["confirm_implausible"],
                implausible_reason=data["implausible_reason"],
                start_date=data.get("start_date") if confirm else None,
                actor=request.user,
                now=now,
            ),
        )
        if outcome.ok:
            course = outcome.value
            if confirm:
                messages.success(
                    request,
                    f"Course opened and group {course.risk_group} confirmed; "
                    "the schedule is laid out.",
                )
            else:
                messages.success(request, "Course opened; its stratification waits for review.")
            return redirect(course_url(course.pk))
    context = {
        "nav": "register",
        "relapse": relapse,
        "patient": relapse.patient,
        "form": form,
        "preview": selectors.decision_summary(preview) if preview else None,
        "protocol": slug,
        "refusal": outcome.refusal,
        "step": 3,
        "preview_url": reverse("web:course-new", args=[relapse.pk]),
    }
    return page(request, "web/course_new.html", context, outcome=outcome)
