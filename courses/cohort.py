"""A synthetic cohort: realistic courses in every state and risk group, some late.

Seeded and reproducible (the same seed gives the same cohort). The relapse facts are
drawn at random and stratified by the real engine; each course is then placed at a
state compatible with its group, with the planned steps before that state done (some
of them late) and the clinical records and transitions that state implies. Rows are
written with bulk_create in batches, so 100k courses take minutes, not hours.
No names: references are synthetic codes.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from courses import schedule
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    CourseDecision,
    CourseTransition,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    State,
    StepKind,
    StepStatus,
    TreatmentCourse,
)
from courses.services.hsct import Sample, decide
from stratification.definitions import ProtocolDefinition, Step
from stratification.engine import stratify
from stratification.facts import RelapseFacts, derive_age_at_diagnosis_months
from stratification.models import StratificationDecision
from stratification.services import decision_values
from teams.models import Team

HSCT_STATES = [
    (State.REGISTERED, 3),
    (State.STRATIFIED, 4),
    (State.INDUCTION, 14),
    (State.RESPONSE_ASSESSMENT, 6),
    (State.HSCT_WORKUP, 14),
    (State.TRANSPLANTED, 10),
    (State.COMPLETED, 12),
    (State.OFF_PROTOCOL, 8),
]
CHEMO_STATES = [
    (State.REGISTERED, 3),
    (State.STRATIFIED, 4),
    (State.INDUCTION, 14),
    (State.RESPONSE_ASSESSMENT, 6),
    (State.POST_REMISSION_CHEMO, 16),
    (State.MAINTENANCE, 18),
    (State.COMPLETED, 12),
    (State.OFF_PROTOCOL, 8),
]
# Transition names along each path, up to the state the course stops at.
PATHS = {
    True: [
        "stratify",
        "start_induction",
        "assess_response",
        "start_hsct_workup",
        "transplant",
        "complete",
    ],
    False: [
        "stratify",
        "start_induction",
        "assess_response",
        "continue_chemotherapy",
        "start_maintenance",
        "complete",
    ],
}
TARGET = {
    "stratify": State.STRATIFIED,
    "start_induction": State.INDUCTION,
    "assess_response": State.RESPONSE_ASSESSMENT,
    "start_hsct_workup": State.HSCT_WORKUP,
    "transplant": State.TRANSPLANTED,
    "continue_chemotherapy": State.POST_REMISSION_CHEMO,
    "start_maintenance": State.MAINTENANCE,
    "complete": State.COMPLETED,
}
# How far through the schedule a course in each state has got: the kind of the first
# step that is still open (None: every step done).
OPEN_FROM = {
    State.STRATIFIED: "first",
    State.INDUCTION: StepKind.RESPONSE_ASSESSMENT,
    State.RESPONSE_ASSESSMENT: StepKind.RESPONSE_ASSESSMENT,
    State.POST_REMISSION_CHEMO: StepKind.MAINTENANCE_START,
    State.HSCT_WORKUP: StepKind.HSCT,
    State.TRANSPLANTED: StepKind.END_OF_THERAPY,
    State.MAINTENANCE: StepKind.END_OF_THERAPY,
    State.COMPLETED: None,
}


@dataclass
class Built:
    patient: Patient
    relapse: Relapse
    decision: StratificationDecision
    course: TreatmentCourse
    steps: list[PlannedStep] = field(default_factory=list)
    records: list[Any] = field(default_factory=list)
    transitions: list[CourseTransition] = field(default_factory=list)


def _facts(rng: random.Random, as_of: date) -> RelapseFacts:
    diagnosis = as_of - timedelta(days=rng.randint(400, 3000))
    on_therapy = rng.random() < 0.25
    end = None if on_therapy else diagnosis + timedelta(days=rng.randint(600, 800))
    earliest = diagnosis + timedelta(days=120)
    latest = min(as_of - timedelta(days=30), (end or diagnosis) + timedelta(days=1500))
    if end is None:
        latest = min(latest, diagnosis + timedelta(days=800))
    if end is not None:
        earliest = max(earliest, end + timedelta(days=1))
    if latest <= earliest:
        latest = earliest + timedelta(days=1)
    relapse = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
    relapse = min(relapse, as_of - timedelta(days=1))
    phenotype = "T" if rng.random() < 0.15 else "B"
    site = rng.choices(["isolated_bm", "combined", "isolated_em"], [55, 20, 25])[0]
    if site == "isolated_bm":
        em_sites: tuple[str, ...] = ()
        blasts = round(rng.uniform(25, 95), 1)
    elif site == "combined":
        em_sites = (rng.choice(["cns", "testis", "other"]),)
        blasts = round(rng.uniform(5, 90), 1)
    else:
        em_sites = (rng.choice(["cns", "cns", "testis", "other"]),)
        blasts = round(rng.uniform(0, 4.9), 1)
    return RelapseFacts(
        initial_diagnosis_date=diagnosis,
        frontline_therapy_end_date=end,
        # A draw without an end date is a relapse during front-line therapy (within 800
        # days of diagnosis: plausible); never "unknown" read as on therapy.
        frontline_status="on_therapy" if end is None else "completed",
        relapse_date=relapse,
        immunophenotype=phenotype,
        site=site,
        em_sites=em_sites,
        bm_blast_percent=blasts,
    )


def _eligibility(rng: random.Random, facts: RelapseFacts) -> tuple[RelapseFacts, int, int]:
    """First relapses of children diagnosed at 2 to 16 years, no prior HSCT; BCR::ABL1
    mostly known negative (the cohort stays inside the protocols' population). Returns
    the facts with them, and the birth year and month they derive from."""
    diagnosis = facts.initial_diagnosis_date
    birth_year = diagnosis.year - rng.randint(2, 16)
    birth_month = rng.randint(1, 12)
    return (
        replace(
            facts,
            # Given, never left to a default: the facts hold no "first relapse" or "no
            # prior HSCT" of their own (unknown would send every case to review).
            relapse_number=1,
            prior_hsct=False,
            bcr_abl1="negative" if rng.random() < 0.9 else "unknown",
            age_at_diagnosis_months=derive_age_at_diagnosis_months(
                birth_year, birth_month, diagnosis
            ),
        ),
        birth_year,
        birth_month,
    )


def _at(day: date, hour: int = 10) -> datetime:
    return timezone.make_aware(datetime.combine(day, time(hour)))


class CohortBuilder:
    def __init__(
        self, team: Team, protocols: list[ProtocolDefinition], seed: int, as_of: date, actor: Any
    ) -> None:
        self.team = team
        self.protocols = protocols
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.actor = actor
        self.seed = seed
        # The eligibility facts come from their own stream: the original draws (and so
        # the cohort's shape for a seed) stay as they were before these facts existed.
        self.eligibility_rng = random.Random(seed * 7919 + 1)
        # The clinical turns (non-response, the donor search, transplant dates) from a
        # stream of their own too, for the same reason.
        self.turns_rng = random.Random(seed * 7919 + 2)

    def build(self, index: int) -> Built:
        rng = self.rng
        protocol = self.protocols[index % len(self.protocols)]
        facts = _facts(rng, self.as_of)
        facts, birth_year, birth_month = _eligibility(self.eligibility_rng, facts)
        # A testicular relapse implies a male patient (the API refuses it otherwise).
        sex = "male" if "testis" in facts.em_sites else rng.choice(["female", "male"])
        decision_result = stratify(facts, protocol)
        group = decision_result.risk_group
        chosen = group or sorted(protocol.group_ids)[-1]
        hsct = decision_result.hsct_indicated
        if hsct is None and group is not None and rng.random() < 0.7:
            hsct = rng.random() < 0.5  # MRD known: S2 decided either way
        if group is None:
            rule = protocol.hsct_indication[chosen].indicated
            hsct = rule if isinstance(rule, bool) else None
        states = HSCT_STATES if hsct else CHEMO_STATES
        state = rng.choices([s for s, _ in states], [w for _, w in states])[0]

        patient = Patient(
            team=self.team,
            reference=f"SYN-{self.seed}-{index:06d}",
            birth_year=birth_year,
            birth_month=birth_month,
            sex=sex,
            immunophenotype=facts.immunophenotype,
            bcr_abl1=facts.bcr_abl1,
            initial_diagnosis_date=facts.initial_diagnosis_date,
            frontline_protocol="AIEOP-BFM ALL 2017",
            frontline_status=facts.frontline_status,
            frontline_end_date=facts.frontline_therapy_end_date,
        )
        # The original draw of the birth year, kept so that the rest of the cohort's
        # draws (states, delays) are the same as before birth months existed.
        rng.randint(1, 16)
        relapse = Relapse(
            patient=patient,
            relapse_date=facts.relapse_date,
            site=facts.site,
            em_sites=list(facts.em_sites),
            bm_blast_percent=facts.bm_blast_percent,
            immunophenotype=facts.immunophenotype,
            relapse_number=facts.relapse_number,
            prior_hsct=facts.prior_hsct,
        )
        decided_at = _at(facts.relapse_date + timedelta(days=rng.randint(1, 5)))
        confirmed = state != State.REGISTERED
        decision = StratificationDecision(
            **decision_values(facts, decision_result),
            created_at=decided_at,
            confirmed_by=self.actor if confirmed else None,
            confirmed_at=decided_at if confirmed else None,
            chosen_group=chosen if confirmed else None,
            override_reason=""
            if (not confirmed or group == chosen)
            else "No rule matched; group assigned by the tumour board (synthetic).",
        )
        course = TreatmentCourse(
            patient=patient,
            relapse=relapse,
            protocol_slug=protocol.slug,
            protocol_version=protocol.version,
            decision=decision,
            proposed_group=group,
            risk_group=chosen if confirmed else None,
            hsct_indicated=hsct if confirmed else decision_result.hsct_indicated,
            decision_confirmed=confirmed,
            state=State.REGISTERED,
            last_activity_at=decided_at,
        )
        built = Built(patient, relapse, decision, course)
        if confirmed:
            self._progress(built, protocol, chosen, hsct, state)
        return built

    def _progress(
        self, b: Built, protocol: ProtocolDefinition, group: str, hsct: bool | None, state: str
    ) -> None:
        rng = self.rng
        template = protocol.schedule_for(group).steps_for(hsct)
        keys = {s.id for s in template}
        rows = [(s.id, s.anchor if s.anchor in keys else "", s.offset_days) for s in template]
        plan_days = [p.planned_on for p in schedule.plan(rows, date(2000, 1, 1))]
        offsets = [(d - date(2000, 1, 1)).days for d in plan_days]
        stop_state = state
        off_at = None
        if state == State.OFF_PROTOCOL:
            path = PATHS[bool(hsct)]
            off_at = rng.randint(1, len(path) - 1)
            stop_state = TARGET[path[off_at - 1]]
        open_index = self._open_index(template, stop_state, rng)
        # Place the course so that its first open step is due around now.
        anchor_day = offsets[open_index] if open_index < len(offsets) else offsets[-1] + 30
        start = self.as_of - timedelta(days=anchor_day + rng.randint(-10, 20))
        # Therapy begins a few days after the relapse, and never after today (the
        # services refuse a clinical start in the future).
        start = min(max(start, b.relapse.relapse_date + timedelta(days=3)), self.as_of)
        b.course.start_date = start
        b.course.stratified_at = _at(start)
        steps = [
            PlannedStep.from_template(
                b.course,
                s,
                rows[i][1],
                sequence=i,
                planned_on=start + timedelta(days=offsets[i]),
                due_on=start + timedelta(days=offsets[i]),
            )
            for i, s in enumerate(template)
        ]
        # Done steps, in order, each on its (moving) due date plus a delay: mostly on
        # time, sometimes days late, rarely weeks.
        for i, step in enumerate(steps):
            schedule.recompute_due_dates(steps, start)
            if i >= open_index:
                break
            delay = rng.choices([0, rng.randint(1, 6), rng.randint(7, 30)], [70, 22, 8])[0]
            done = min(step.due_on + timedelta(days=delay), self.as_of)
            step.done_on, step.status = done, StepStatus.DONE
            self._record_for(b, step, done)
        schedule.recompute_due_dates(steps, start)
        b.steps = steps
        self._turns(b, protocol, group, state, steps, open_index, start)
        self._transitions(b, hsct, state, off_at, steps, open_index)

    def _turns(
        self,
        b: Built,
        protocol: ProtocolDefinition,
        group: str,
        state: str,
        steps: list[PlannedStep],
        open_index: int,
        start: date,
    ) -> None:
        """What the alert rules watch beyond late steps, in plausible proportions: the
        HSCT proposal the deciding MRD makes (as the services make it) while no
        clinician has decided; a response assessment without CR2 (about a fifth of the
        courses waiting at it); and for a course in HSCT work-up, the donor search
        (most find a donor and get a transplant date; some searches are still open,
        some have not started or found no donor)."""
        rng = self.turns_rng
        course = b.course
        rule = protocol.hsct_indication[group]
        if course.hsct_indicated is None and rule.indicated == "mrd_threshold":
            samples = [Sample.of(r) for r in b.records if isinstance(r, MrdResult)]
            blocks = [
                (r.block_type, r.start_date)
                for r in b.records
                if isinstance(r, BlockAdministration)
            ]
            found = decide(rule, samples, blocks)
            if found.sample is not None:
                course.hsct_proposed = found.indicated
                course.hsct_proposal_basis = found.basis
                course.hsct_proposed_on = found.sample.sampled_on
            course.hsct_evidence = found.as_dict()
        if state == State.RESPONSE_ASSESSMENT and open_index < len(steps) and rng.random() < 0.2:
            step = steps[open_index]
            if step.kind == StepKind.RESPONSE_ASSESSMENT:
                done = min(step.due_on + timedelta(days=rng.randint(0, 6)), self.as_of)
                step.done_on, step.status = done, StepStatus.DONE
                b.records.append(
                    ResponseAssessment(
                        assessed_on=done,
                        marrow=rng.choice(["M2", "M3"]),
                        cr2=False,
                        em_status="none",
                        course=course,
                        recorded_by=self.actor,
                        recorded_at=_at(done, 15),
                    )
                )
                schedule.recompute_due_dates(steps, start)
        if state == State.HSCT_WORKUP:
            referral = next((r for r in b.records if isinstance(r, HsctReferral)), None)
            transplant = next((s for s in steps if s.kind == StepKind.HSCT), None)
            if referral is None or referral.performed_on is not None or transplant is None:
                return
            search = rng.choices(
                ["donor_found", "ongoing", "not_started", "no_donor"], [55, 25, 12, 8]
            )[0]
            referral.donor_search_status = search
            if search == "donor_found":
                referral.donor_type = rng.choice(["MSD", "MUD", "haplo"])
                referral.planned_on = max(
                    transplant.due_on, referral.referred_on + timedelta(days=14)
                )
            elif search != "not_started" and rng.random() < 0.3:
                # A search that has dragged on for months: the whole course moved back
                # (the transplant is now late: hsct_delayed), as far as its relapse allows.
                room = (start - b.relapse.relapse_date).days - 3
                shift = timedelta(days=min(rng.randint(60, 120), room))
                if shift.days >= 60:
                    self._move_back(b, steps, shift)

    def _move_back(self, b: Built, steps: list[PlannedStep], shift: timedelta) -> None:
        b.course.start_date -= shift
        b.course.stratified_at -= shift
        for step in steps:
            step.planned_on -= shift
            step.due_on -= shift
            if step.done_on is not None:
                step.done_on -= shift
        fields = ("start_date", "end_date", "assessed_on", "sampled_on", "referred_on")
        for record in b.records:
            for name in (*fields, "recorded_at"):
                if getattr(record, name, None) is not None:
                    setattr(record, name, getattr(record, name) - shift)

    def _open_index(self, template: tuple[Step, ...], state: str, rng: random.Random) -> int:
        marker = OPEN_FROM.get(state)
        if marker is None:
            return len(template)
        if marker == "first":
            return 0
        index = next((i for i, s in enumerate(template) if s.kind == marker), len(template))
        if state == State.INDUCTION:
            return rng.randint(1, max(1, index))
        if state in (State.POST_REMISSION_CHEMO, State.HSCT_WORKUP):
            first_open = (
                next(i for i, s in enumerate(template) if s.kind == StepKind.RESPONSE_ASSESSMENT)
                + 1
            )
            return rng.randint(min(first_open, index), index)
        if state == State.TRANSPLANTED:
            hsct_index = next((i for i, s in enumerate(template) if s.kind == StepKind.HSCT), 0)
            return rng.randint(hsct_index + 1, max(hsct_index + 1, index))
        return index

    def _record_for(self, b: Built, step: PlannedStep, done: date) -> None:
        rng = self.rng
        common = {"course": b.course, "recorded_by": self.actor, "recorded_at": _at(done, 15)}
        if step.kind == StepKind.BLOCK:
            b.records.append(
                BlockAdministration(
                    block_type=step.block_type or "R2",
                    start_date=done,
                    end_date=done + timedelta(days=5),
                    delay_reason="count recovery" if done > step.planned_on else "",
                    **common,
                )
            )
        elif step.kind == StepKind.RESPONSE_ASSESSMENT:
            b.records.append(
                ResponseAssessment(
                    assessed_on=done, marrow="M1", cr2=True, em_status="none", **common
                )
            )
        elif step.kind == StepKind.MRD:
            value = rng.choice([0.0, 0.00005, 0.0002, 0.001, 0.005, 0.02])
            b.records.append(
                MrdResult(
                    sampled_on=done,
                    time_point=step.mrd_time_point or "end_of_induction",
                    # Undetectable is a negative result at the assay's sensitivity.
                    value=value or None,
                    qualitative="" if value else "negative",
                    sensitivity=1e-4,
                    entered_unit="fraction",
                    **common,
                )
            )
        elif step.kind == StepKind.HSCT_REFERRAL:
            b.records.append(
                HsctReferral(referred_on=done, donor_search_status="ongoing", **common)
            )
        elif step.kind == StepKind.HSCT:
            referral = next((r for r in b.records if isinstance(r, HsctReferral)), None)
            if referral is None:
                referral = HsctReferral(referred_on=done, **common)
                b.records.append(referral)
            referral.performed_on = max(done, referral.referred_on)
            referral.planned_on = referral.performed_on
            referral.donor_search_status = "donor_found"
            referral.donor_type = rng.choice(["MSD", "MUD", "haplo"])

    def _transitions(
        self,
        b: Built,
        hsct: bool | None,
        state: str,
        off_at: int | None,
        steps: list[PlannedStep],
        open_index: int,
    ) -> None:
        path = PATHS[bool(hsct)]
        if state == State.OFF_PROTOCOL:
            names = path[:off_at]
        else:
            names = path[: path.index(next(n for n in path if TARGET[n] == state)) + 1]
        done_days = [s.done_on for s in steps if s.done_on] or [b.course.start_date]
        end_of_therapy = next(
            (s.done_on for s in steps if s.kind == StepKind.END_OF_THERAPY and s.done_on), None
        )
        current = State.REGISTERED
        day = b.course.start_date
        for i, name in enumerate(names):
            day = min(self.as_of, max(day, done_days[min(i * 2, len(done_days) - 1)]))
            if name == "complete" and end_of_therapy is not None:
                # As the services allow it: once the end-of-therapy step is reached.
                day = max(day, end_of_therapy)
            b.transitions.append(
                CourseTransition(
                    course=b.course,
                    name=name,
                    from_state=current,
                    to_state=TARGET[name],
                    actor=self.actor,
                    # The course is stratified as of its clinical start (as confirm does).
                    on=b.course.start_date if name == "stratify" else day,
                    at=_at(day, 11 + i % 6),
                    reason="",
                )
            )
            current = TARGET[name]
        if state == State.OFF_PROTOCOL:
            kind = self.rng.choice(
                ["refractory", "second_relapse", "death", "withdrawal", "lost_to_follow_up"]
            )
            event_day = min(self.as_of, day + timedelta(days=self.rng.randint(1, 20)))
            b.transitions.append(
                CourseTransition(
                    course=b.course,
                    name="take_off_protocol",
                    from_state=current,
                    to_state=State.OFF_PROTOCOL,
                    actor=self.actor,
                    on=event_day,
                    at=_at(event_day, 16),
                    reason=f"synthetic: {kind.replace('_', ' ')}",
                )
            )
            b.course.off_protocol_reason = kind
            if kind in ("second_relapse", "death", "withdrawal", "lost_to_follow_up"):
                b.records.append(
                    ClinicalEvent(
                        course=b.course,
                        kind=kind,
                        occurred_on=event_day,
                        # A death or second relapse recorded on an active course is
                        # what takes it off protocol (courses.services.event_record).
                        ended_course=kind in ("second_relapse", "death"),
                        recorded_by=self.actor,
                        recorded_at=_at(event_day, 16),
                    )
                )
            current = State.OFF_PROTOCOL
        # The state field is protected against assignment after load; an unsaved
        # instance is set through the field's own API.
        b.course._meta.get_field("state").set_state(b.course, current)
        b.course.version = 1 + len(b.transitions)
        last = max([b.course.stratified_at, *(t.at for t in b.transitions)])
        b.course.last_activity_at = last
        b.course.last_clinical_on = max(
            [
                b.course.start_date,
                *(t.on for t in b.transitions),
                *(s.done_on for s in steps if s.done_on),
                *(d for r in b.records for d in _record_days(r)),
            ]
        )


def _record_days(record: Any) -> list[date]:
    """The clinical dates a record holds (as courses.services.common.touch counts them)."""
    fields = ("start_date", "end_date", "assessed_on", "sampled_on", "referred_on")
    fields += ("performed_on", "occurred_on")
    return [d for f in fields if (d := getattr(record, f, None)) is not None]


def cohort_actor() -> Any:
    User = get_user_model()
    user, _ = User.objects.get_or_create(username="cohort-generator", defaults={"is_active": False})
    return user


def write_cohort(
    team: Team,
    protocols: list[ProtocolDefinition],
    courses: int,
    seed: int,
    as_of: date,
    batch: int = 1000,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    builder = CohortBuilder(team, protocols, seed, as_of, cohort_actor())
    start_index = Patient.objects.filter(team=team, reference__startswith=f"SYN-{seed}-").count()
    written = 0
    for chunk in _chunks(range(start_index, start_index + courses), batch):
        built = [builder.build(i) for i in chunk]
        _write(built)
        written += len(built)
        if progress:
            progress(written, courses)
    return written


def _chunks(items: range, size: int) -> Iterator[range]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@transaction.atomic
def _write(built: list[Built]) -> None:
    Patient.objects.bulk_create([b.patient for b in built])
    for b in built:
        b.relapse.patient = b.patient
        b.course.patient = b.patient
    Relapse.objects.bulk_create([b.relapse for b in built])
    StratificationDecision.objects.bulk_create([b.decision for b in built])
    for b in built:
        b.course.relapse = b.relapse
        b.course.decision = b.decision
    TreatmentCourse.objects.bulk_create([b.course for b in built])
    CourseDecision.objects.bulk_create(
        [
            CourseDecision(course=b.course, decision=b.decision, at=b.decision.created_at)
            for b in built
        ]
    )
    steps, transitions = [], []
    by_model: dict[type, list[Any]] = {}
    for b in built:
        for s in b.steps:
            s.course = b.course
        for t in b.transitions:
            t.course = b.course
        for r in b.records:
            r.course = b.course
            by_model.setdefault(type(r), []).append(r)
        steps += b.steps
        transitions += b.transitions
    PlannedStep.objects.bulk_create(steps, batch_size=5000)
    CourseTransition.objects.bulk_create(transitions, batch_size=5000)
    for model, rows in by_model.items():
        model.objects.bulk_create(rows, batch_size=5000)
