"""The demo cohort (load_demo, notifications/demo.py) reads like a real team's morning:
every state, both protocols and all their groups, deaths and second relapses, a
back-entered course, an open alert of every registered kind, steps due this week — and
nothing a clinician would call broken (no clinical date in the future, blocks weeks
apart, delays of days or weeks, not hundreds of days). Loaded once for the module, as
`make run` loads it, on a frozen morning; each test reads it inside its own savepoint.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.db import transaction
from django.db.models import F, Q

from courses.models import (
    ACTIVE_STATES,
    BlockAdministration,
    ClinicalEvent,
    CourseTransition,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    ResponseAssessment,
    State,
    StepStatus,
    TreatmentCourse,
)
from courses.selectors import protocol_for
from notifications.demo import SCENARIOS, demo_cohort, scenario_of
from notifications.models import UNRESOLVED, Alert, OutboundEmail
from notifications.rules import RULES
from teams.models import Membership, Team

pytestmark = pytest.mark.django_db

# A Wednesday morning in Berlin (the demo teams' time zone): today is 2026-11-25.
NOW = datetime(2026, 11, 25, 7, 30, tzinfo=UTC)
TODAY = date(2026, 11, 25)
TEAMS = ("north", "south")


@pytest.fixture(scope="module", autouse=True)
def demo(django_db_setup: None, django_db_blocker: pytest.FixtureRequest) -> Iterator[str]:
    """`manage.py load_demo` as `make run` calls it, once for the module; rolled back
    after it (each test runs in a savepoint inside this transaction)."""
    with django_db_blocker.unblock(), time_machine.travel(NOW, tick=False), transaction.atomic():
        out = StringIO()
        call_command("load_demo", stdout=out)
        yield out.getvalue()
        transaction.set_rollback(True)


def courses(team: str) -> list[TreatmentCourse]:
    return list(
        TreatmentCourse.objects.filter(patient__team__slug=team)
        .select_related("patient", "relapse")
        .order_by("patient__reference", "relapse__relapse_date")
    )


def open_alerts(team: str):
    return Alert.objects.filter(course__patient__team__slug=team, state__in=UNRESOLVED)


@pytest.mark.parametrize("team", TEAMS)
def test_each_team_has_about_forty_courses_in_every_state(team):
    found = courses(team)
    assert 35 <= len(found) <= 50
    missing = set(State.values) - {c.state for c in found}
    assert not missing, f"no demo course in state(s) {sorted(missing)}"


@pytest.mark.parametrize("team", TEAMS)
def test_both_protocols_and_every_group_in_realistic_proportions(team):
    found = courses(team)
    for slug in ("all-rez-bfm-90", "all-rez-bfm-2002"):
        groups = {c.proposed_group for c in found if c.protocol_slug == slug}
        assert set(protocol_for(slug).group_ids) <= groups, (slug, groups)
    by_group = {}
    for course in found:
        by_group[course.proposed_group] = by_group.get(course.proposed_group, 0) + 1
    # ALL-REZ BFM 2002: S2 is the largest stratum, S1 the smallest; BFM 90: B > C.
    assert by_group["S2"] == max(by_group[g] for g in ("S1", "S2", "S3", "S4"))
    assert by_group["S1"] <= min(by_group[g] for g in ("S2", "S3", "S4"))
    assert by_group["B"] > by_group["C"]
    # Cases outside a protocol's population wait for a clinician (no group guessed).
    review = [c for c in found if c.proposed_group is None]
    assert review and all(c.state == State.REGISTERED for c in review)


def _clinical_dates(team: str) -> list[tuple[str, date | None]]:
    def dates(model, *fields):
        rows = model.objects.filter(course__patient__team__slug=team).values_list(*fields)
        return [
            (f"{model.__name__}.{f}", d) for row in rows for f, d in zip(fields, row, strict=True)
        ]

    patients = Patient.objects.filter(team__slug=team)
    found = [("relapse", c.relapse.relapse_date) for c in courses(team)]
    found += [("start_date", c.start_date) for c in courses(team)]
    found += [("diagnosis", d) for d in patients.values_list("initial_diagnosis_date", flat=True)]
    found += [("frontline_end", d) for d in patients.values_list("frontline_end_date", flat=True)]
    found += dates(CourseTransition, "on")
    found += dates(BlockAdministration, "start_date", "end_date")
    found += dates(ResponseAssessment, "assessed_on")
    found += dates(MrdResult, "sampled_on")
    found += dates(ClinicalEvent, "occurred_on")
    found += dates(HsctReferral, "referred_on", "performed_on")
    found += dates(PlannedStep, "done_on")
    return [(what, day) for what, day in found if day is not None]


@pytest.mark.parametrize("team", TEAMS)
def test_no_clinical_date_is_in_the_future_only_planned_steps_are(team):
    future = [(what, day) for what, day in _clinical_dates(team) if day > TODAY]
    assert not future, future
    # Written at the moments the team would have written them: never after now.
    for model in (CourseTransition,):
        assert not model.objects.filter(at__gt=NOW).exists()
    for model in (BlockAdministration, ResponseAssessment, MrdResult, ClinicalEvent):
        assert not model.objects.filter(recorded_at__gt=NOW).exists()
    # What lies ahead is planned: open steps due later, and planned transplants.
    assert PlannedStep.objects.filter(
        course__patient__team__slug=team, status=StepStatus.PLANNED, due_on__gt=TODAY
    ).exists()


@pytest.mark.parametrize("team", TEAMS)
def test_relapses_spread_over_the_last_three_years(team):
    days = sorted(c.relapse.relapse_date for c in courses(team))
    assert days[0] >= TODAY - timedelta(days=3 * 366)
    assert days[0] <= TODAY - timedelta(days=2 * 365)  # the earliest: over two years ago
    assert days[-1] >= TODAY - timedelta(days=14)  # and the latest: this fortnight
    by_year = {(TODAY - d).days // 365 for d in days}
    assert by_year == {0, 1, 2}


def test_every_registered_alert_kind_has_a_scenario():
    declared = {kind for scenario in SCENARIOS for kind in scenario.alerts}
    missing = sorted(str(rule.kind) for rule in RULES if rule.kind not in declared)
    assert not missing, (
        f"no demo scenario raises the alert kind(s) {missing}: add one per kind to "
        "SCENARIOS in notifications/demo.py (its `alerts` naming the kind)"
    )


@pytest.mark.parametrize("team", TEAMS)
def test_an_open_alert_of_every_registered_kind(team):
    kinds = set(open_alerts(team).values_list("kind", flat=True))
    missing = sorted(str(rule.kind) for rule in RULES if rule.kind not in kinds)
    assert not missing, (
        f"team {team}: no open demo alert of kind(s) {missing}; the demo's worklist must "
        "show every kind (a scenario in notifications/demo.py SCENARIOS for each)"
    )


@pytest.mark.parametrize("team", TEAMS)
def test_each_scenario_raises_the_alerts_it_is_there_for(team):
    for course in courses(team):
        scenario = scenario_of(course)
        assert scenario is not None, course.patient.reference
        if course.relapse.relapse_number > 1:
            continue  # the course of a second relapse: not the scenario's own course
        kinds = set(open_alerts(team).filter(course=course).values_list("kind", flat=True))
        assert set(scenario.alerts) <= kinds, (scenario.name, kinds)


@pytest.mark.parametrize("team", TEAMS)
def test_a_believable_morning_not_hundreds_of_days_overdue(team):
    alerts = list(open_alerts(team))
    # A handful of each kind, not one per course.
    assert len(alerts) <= len(courses(team))
    old = [(a.kind, a.condition_since) for a in alerts if a.condition_since < TODAY - timedelta(60)]
    assert not old, old
    # The high ones were queued as e-mails to the team (files under `make run`).
    high = [a for a in alerts if a.severity == "high"]
    assert high and OutboundEmail.objects.exists()


@pytest.mark.parametrize("team", TEAMS)
def test_deaths_and_second_relapses_for_the_outcome_plot(team):
    events = ClinicalEvent.objects.filter(course__patient__team__slug=team)
    assert events.filter(kind="death").count() >= 2
    assert events.filter(kind="second_relapse").count() >= 1
    # A second relapse recorded on an active course ends it, and is opened as a course
    # of its own, which waits for review (outside the first-relapse protocols).
    second = [c for c in courses(team) if c.relapse.relapse_number == 2]
    assert second and all(c.previous_course_id for c in second)
    off = {c.off_protocol_reason for c in courses(team) if c.state == State.OFF_PROTOCOL}
    assert {"death", "second_relapse", "refractory"} <= off


@pytest.mark.parametrize("team", TEAMS)
def test_back_entered_courses_blocks_before_confirmation_start_in_the_past(team):
    back = []
    for course in courses(team):
        first = course.blocks.order_by("recorded_at").first()
        if course.stratified_at and first and first.recorded_at <= course.stratified_at:
            back.append(course)
    assert back
    for course in back:
        assert course.stratified_at.date() - course.start_date > timedelta(days=28)
        assert course.transitions.filter(on__lt=course.stratified_at.date()).count() >= 2


@pytest.mark.parametrize("team", TEAMS)
def test_steps_due_this_week(team):
    due = PlannedStep.objects.filter(
        course__patient__team__slug=team,
        course__state__in=ACTIVE_STATES,
        status=StepStatus.PLANNED,
        due_on__gte=TODAY,
        due_on__lte=TODAY + timedelta(days=6),
    )
    assert due.count() >= 4


@pytest.mark.parametrize("team", TEAMS)
def test_dates_follow_the_schedule_with_realistic_delays(team):
    for course in courses(team):
        starts = list(course.blocks.values_list("start_date", flat=True))
        gaps = [(b - a).days for a, b in zip(starts, starts[1:], strict=False)]
        # Blocks weeks apart (the next one planned three weeks after the previous).
        assert all(gap >= 14 for gap in gaps), (course.patient.reference, starts)
        if course.start_date:
            assert course.relapse.relapse_date < course.start_date <= starts[0] if starts else True
    steps = PlannedStep.objects.filter(course__patient__team__slug=team)
    done = steps.filter(status=StepStatus.DONE).annotate(late=F("done_on") - F("due_on"))
    late = [s for s in done if s.done_on > s.due_on]
    assert late, "some steps are done late"
    assert all((s.done_on - s.due_on).days <= 16 for s in late if s.kind == "block")
    # One course runs weeks behind the protocol's plan (cumulative delay).
    behind = steps.filter(
        course__state__in=ACTIVE_STATES, status=StepStatus.PLANNED, due_on__gt=TODAY
    ).filter(~Q(due_on=F("planned_on")))
    assert any((s.due_on - s.planned_on).days >= 30 for s in behind)


def summary(team: str) -> list[tuple]:
    """What a clinician sees of the cohort, without database ids."""
    rows = []
    for course in courses(team):
        rows.append(
            (
                course.patient.reference,
                course.protocol_slug,
                course.risk_group,
                course.state,
                course.start_date,
                course.relapse.relapse_date,
                tuple(course.transitions.order_by("on", "id").values_list("name", "on")),
                tuple(course.steps.order_by("sequence").values_list("key", "status", "due_on")),
                tuple(
                    sorted(open_alerts(team).filter(course=course).values_list("kind", flat=True))
                ),
            )
        )
    return rows


def test_the_same_today_and_seed_give_the_same_cohort():
    from notifications.services import alerts_sweep

    north = Team.objects.get(slug="north")
    copy = Team.objects.create(slug="copy", name="Copy", time_zone=north.time_zone)
    actor = Membership.objects.filter(team=north, role="clinician").get().user
    Membership.objects.create(team=copy, user=actor, role="clinician")
    with time_machine.travel(NOW, tick=False):
        written = demo_cohort(copy, now=NOW, actor=actor, seed=2026)
        alerts_sweep(NOW)
    assert written == len(courses("north"))
    assert summary("copy") == summary("north")
    assert summary("south") != summary("north")  # another seed, another cohort


def test_loading_the_demo_again_changes_nothing(demo):
    assert "Wrote" in demo
    before = TreatmentCourse.objects.count(), Alert.objects.count()
    out = StringIO()
    with time_machine.travel(NOW + timedelta(minutes=5), tick=False):
        call_command("load_demo", stdout=out)
    assert (TreatmentCourse.objects.count(), Alert.objects.count()) == before
    assert "already has its demo cohort" in out.getvalue()
    assert "demo-coord.north" in out.getvalue()  # the credentials are printed again


@pytest.mark.parametrize(
    "now",
    [
        datetime(2028, 2, 29, 12, 0, tzinfo=UTC),  # a leap day
        datetime(2026, 12, 31, 23, 30, tzinfo=UTC),  # New Year's Day in Berlin already
    ],
)
def test_any_morning_gives_a_complete_demo(now):
    """The scenarios are placed from whatever day the demo is loaded on."""
    from notifications.services import alerts_sweep

    north = Team.objects.get(slug="north")
    team = Team.objects.create(slug="other-day", name="Other day", time_zone=north.time_zone)
    actor = Membership.objects.filter(team=north, role="clinician").get().user
    Membership.objects.create(team=team, user=actor, role="clinician")
    with time_machine.travel(now, tick=False):
        demo_cohort(team, now=now, actor=actor, seed=7)
        alerts_sweep(now)
    today = team.today(now)
    assert {c.state for c in courses("other-day")} == set(State.values)
    assert max(day for _, day in _clinical_dates("other-day")) <= today
    kinds = set(open_alerts("other-day").values_list("kind", flat=True))
    assert {rule.kind for rule in RULES} <= kinds
