"""Data entry on a course: one page per record type (a follow-up page for a course that
has ended), the amend and void pages of a record, and the reschedule / skip page of a
planned step. Each form posts to its own page; the services validate, and what they
refuse is shown beside the field with everything typed kept."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.forms.models import model_to_dict
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from courses import services as course_services
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    HsctReferral,
    MrdResult,
    PlannedStep,
    ResponseAssessment,
    TreatmentCourse,
)
from web import selectors
from web.errors import Outcome, submit
from web.forms import (
    AssessmentForm,
    BlockForm,
    EventForm,
    MrdForm,
    ReferralForm,
    StepRescheduleForm,
    StepSkipForm,
    VoidForm,
    amendment_form,
)
from web.views.base import page, writable_course
from web.views.course import course_url


@dataclass(frozen=True)
class RecordKind:
    title: str
    form: type[forms.Form]
    service: Callable[..., Any]
    done: str | Callable[[Any], str]  # the success message (of the saved record)
    # Extra keyword arguments of the form for this course (choices, the current values).
    options: Callable[[TreatmentCourse, list[PlannedStep]], dict[str, Any]] = (
        lambda course, steps: {}  # noqa: ARG005
    )


def _referral_initial(course: TreatmentCourse, steps: list[PlannedStep]) -> dict[str, Any]:
    referral = HsctReferral.objects.filter(course=course).first()
    return {"initial": model_to_dict(referral)} if referral else {}


RECORD_KINDS: dict[str, RecordKind] = {
    "block": RecordKind(
        "Record a chemotherapy block",
        BlockForm,
        course_services.block_record,
        "Block recorded.",
        lambda course, steps: {"block_types": selectors.record_vocabulary(steps)["block_types"]},
    ),
    "assessment": RecordKind(
        "Record a response assessment",
        AssessmentForm,
        course_services.assessment_record,
        "Response assessment recorded.",
    ),
    "mrd": RecordKind(
        "Record an MRD result",
        MrdForm,
        course_services.mrd_record,
        # The stored value read back in both units: a tenfold slip shows here.
        lambda result: f"MRD of {result.sampled_on} saved: {result.value_display}.",
        lambda course, steps: {"time_points": selectors.mrd_time_point_choices(course, steps)},
    ),
    "referral": RecordKind(
        "Record the HSCT referral",
        ReferralForm,
        course_services.referral_save,
        "HSCT referral saved.",
        _referral_initial,
    ),
    "event": RecordKind(
        "Record a clinical event",
        EventForm,
        course_services.event_record,
        "Event recorded.",
    ),
    # After therapy (a completed or off-protocol course): the patient's follow-up.
    "follow-up": RecordKind(
        "Record follow-up",
        EventForm,
        course_services.event_record,
        "Follow-up recorded.",
        lambda course, steps: {"follow_up": True, "initial": {"kind": "follow_up_contact"}},
    ),
}


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def record(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    spec = RECORD_KINDS.get(kind)
    if spec is None:
        raise Http404
    course = writable_course(request, pk)
    steps = selectors.course_steps(course)
    options = spec.options(course, steps)
    outcome = Outcome()
    if request.method == "POST":
        options.pop("initial", None)
        form = spec.form(request.POST, **options)
        now = timezone.now()
        outcome = submit(
            form, lambda data: spec.service(course, data=data, actor=request.user, now=now)
        )
        if outcome.ok:
            done = spec.done(outcome.value) if callable(spec.done) else spec.done
            messages.success(request, done)
            return redirect(course_url(course.pk, "records"))
    else:
        form = spec.form(**options)
    context = {
        "nav": "worklist",
        "course": course,
        "title": spec.title,
        "form": form,
        "kind": kind,
        "refusal": outcome.refusal,
        "vocabulary": selectors.record_vocabulary(steps),
    }
    return page(request, "web/record.html", context, outcome=outcome)


@dataclass(frozen=True)
class Correctable:
    """A kind of record as its amend and void pages see it."""

    model: type
    form: type[forms.Form]
    title: str
    options: Callable[[TreatmentCourse, list[PlannedStep]], dict[str, Any]] = (
        lambda course, steps: {}  # noqa: ARG005
    )
    # What the amend page starts from: the stored record, as its form reads it.
    initial: Callable[[Any], dict[str, Any]] = lambda record: model_to_dict(  # noqa: E731
        record, fields=course_services.amendable_fields(type(record))
    )
    # How the amended record reads in the success message ("" for the generic words).
    echo: Callable[[Any], str] = lambda record: ""  # noqa: ARG005, E731


# The kinds of the course page's records (the timeline's entry types).
CORRECTABLE: dict[str, Correctable] = {
    "block": Correctable(BlockAdministration, BlockForm, "block", RECORD_KINDS["block"].options),
    "response_assessment": Correctable(ResponseAssessment, AssessmentForm, "response assessment"),
    "mrd": Correctable(
        MrdResult,
        MrdForm,
        "MRD result",
        RECORD_KINDS["mrd"].options,
        # In the unit it was typed in: a result entered in percent is corrected in
        # percent, never a fraction shown under a percent button.
        initial=course_services.mrd_entry,
        echo=lambda result: result.value_display,
    ),
    "hsct_referral": Correctable(HsctReferral, ReferralForm, "HSCT referral"),
    "event": Correctable(ClinicalEvent, EventForm, "event"),
}


def _correctable(request: HttpRequest, pk: int, kind: str, record_pk: int) -> tuple[Any, ...]:
    spec = CORRECTABLE.get(kind)
    if spec is None:
        raise Http404
    course = writable_course(request, pk)
    try:
        record = spec.model.with_voided.get(course=course, pk=record_pk)
    except spec.model.DoesNotExist as exc:
        raise Http404 from exc
    return spec, course, record


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def record_amend(request: HttpRequest, pk: int, kind: str, record_pk: int) -> HttpResponse:
    """Correct a record, saying why: the form shows what is stored; what changes is
    checked like a new record, and the old values, the new ones and the reason go to
    the audit trail (the course page shows them beside the record)."""
    spec, course, record = _correctable(request, pk, kind, record_pk)
    steps = selectors.course_steps(course)
    options = spec.options(course, steps)
    form_class = amendment_form(spec.form)
    outcome = Outcome()
    if request.method == "POST":
        form = form_class(request.POST, **options)
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: course_services.record_amend(
                record, data=data, reason=form.reason_given(), actor=request.user, now=now
            ),
        )
        if outcome.ok:
            messages.success(request, _amended_message(spec, record, outcome.value, now))
            return redirect(course_url(course.pk, "records"))
    else:
        form = form_class(initial=spec.initial(record), **options)
    context = {
        "nav": "worklist",
        "course": course,
        "title": f"Amend the {spec.title}",
        "form": form,
        "refusal": outcome.refusal,
        "record": record,
        "vocabulary": selectors.record_vocabulary(steps),
    }
    return page(request, "web/record.html", context, outcome=outcome)


def _amended_message(spec: Correctable, before: Any, after: Any, now: datetime) -> str:
    if after.amended_at != now:
        return f"Nothing changed: the {spec.title} is as it was."
    was, now_reads = spec.echo(before), spec.echo(after)
    if now_reads and now_reads != was:
        return (
            f"The {spec.title} was amended: {now_reads} (was {was}); the old values and your "
            "reason are kept."
        )
    return f"The {spec.title} was amended; its old values and your reason are kept."


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def record_void(request: HttpRequest, pk: int, kind: str, record_pk: int) -> HttpResponse:
    """Void a record entered wrongly, with the reason: it stays, shown as voided, and
    counts for nothing any more."""
    spec, course, record = _correctable(request, pk, kind, record_pk)
    outcome = Outcome()
    form = VoidForm(request.POST or None)
    if request.method == "POST":
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: course_services.record_void(
                record, reason=data["reason"], actor=request.user, now=now
            ),
        )
        if outcome.ok:
            messages.success(request, f"The {spec.title} was voided; it stays on the record.")
            return redirect(course_url(course.pk, "records"))
    context = {
        "nav": "worklist",
        "course": course,
        "title": f"Void the {spec.title}",
        "form": form,
        "refusal": outcome.refusal,
        "record": record,
        "void": True,
        "vocabulary": {},
    }
    return page(request, "web/record.html", context, outcome=outcome)


STEP_ACTIONS = {"reschedule": StepRescheduleForm, "skip": StepSkipForm}


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def step(request: HttpRequest, pk: int, step_pk: int) -> HttpResponse:
    course = writable_course(request, pk)
    try:
        planned = course.steps.get(pk=step_pk)
    except PlannedStep.DoesNotExist as exc:
        raise Http404 from exc
    forms_ = {
        name: form_class(prefix=name, initial={"due_on": planned.due_on})
        for name, form_class in STEP_ACTIONS.items()
    }
    outcome = Outcome()
    if request.method == "POST":
        action = request.POST.get("action")
        if action not in STEP_ACTIONS:
            raise Http404
        form = forms_[action] = STEP_ACTIONS[action](request.POST, prefix=action)
        now = timezone.now()
        outcome = submit(
            form,
            lambda data: course_services.step_update(
                planned, data=data, actor=request.user, now=now
            ),
        )
        if outcome.ok:
            word = "rescheduled" if action == "reschedule" else "skipped"
            messages.success(request, f"{planned.label}: {word}.")
            return redirect(course_url(course.pk, f"step-{planned.pk}"))
    context = {
        "nav": "worklist",
        "course": course,
        "step": planned,
        "forms": forms_,
        "refusal": outcome.refusal,
        "today": course.patient.team.today(timezone.now()),
    }
    return page(request, "web/step.html", context, outcome=outcome)
