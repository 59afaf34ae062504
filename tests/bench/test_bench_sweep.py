"""The sweep benchmark's plain-SQL baseline (bench/bench_sweep.py) finds exactly the
alerts the sweep keeps open -- on the synthetic cohort the benchmark uses, and after
the records the rules read are voided or contradicted (a ratio against SQL that
selects other alerts would mean nothing)."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timedelta

import pytest
from django.utils import timezone

from bench.bench_sweep import PLAIN_SQL, PLAIN_SQL_INDEXED, plain_sql
from courses.cohort import write_cohort
from courses.models import HsctReferral, ResponseAssessment, State, TreatmentCourse
from notifications.models import Alert, AlertKind
from notifications.services import alerts_sweep
from stratification.selectors import protocol_get
from tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def open_keys() -> set[tuple[int, str, str]]:
    return set(Alert.objects.exclude(state="resolved").values_list("course_id", "kind", "subject"))


def agree() -> set[tuple[int, str, str]]:
    now = timezone.now()
    alerts_sweep(now)
    today = timezone.localtime(now).date()
    keys = open_keys()
    for statements in (PLAIN_SQL, PLAIN_SQL_INDEXED):
        _, found = plain_sql(today, "Europe/Berlin", statements)
        assert Counter(k for _, k, _ in found - keys) == Counter()  # only the plain SQL
        assert Counter(k for _, k, _ in keys - found) == Counter()  # only the sweep
    return keys


def test_the_plain_sql_finds_the_alerts_the_sweep_keeps_open(postgres, time_machine):
    time_machine.move_to(datetime.fromisoformat("2026-11-25T10:00:00+00:00"), tick=False)
    team = TeamFactory(slug="cohort", name="cohort", time_zone="Europe/Berlin")
    protocols = [protocol_get("all-rez-bfm-90"), protocol_get("all-rez-bfm-2002")]
    write_cohort(team, protocols, 1200, seed=2026, as_of=date(2026, 11, 24))
    kinds = {k for _, k, _ in agree()}
    # The cohort exercises the rules of issue 13, not only late steps.
    assert {
        AlertKind.HSCT_DECISION_PENDING,
        AlertKind.NON_RESPONSE,
        AlertKind.MRD_HIGH_BEFORE_HSCT,
        AlertKind.DONOR_SEARCH_STALLED,
        AlertKind.CUMULATIVE_DELAY,
        AlertKind.HSCT_DELAYED,
    } <= kinds

    # The edges the cohort does not draw: voided referrals, CR2 regained and lost,
    # voided assessments, decisions in doubt.
    referrals = HsctReferral.objects.filter(course__state=State.HSCT_WORKUP).order_by("pk")
    HsctReferral.objects.filter(pk__in=referrals.values("pk")[:15]).update(voided_at=timezone.now())
    non_responders = ResponseAssessment.objects.filter(cr2=False)
    for assessment in non_responders[:3]:
        ResponseAssessment.objects.create(
            course_id=assessment.course_id,
            assessed_on=assessment.assessed_on + timedelta(days=1),
            marrow="M1",
            cr2=True,
            em_status="none",
            recorded_by=assessment.recorded_by,
            recorded_at=assessment.recorded_at,
        )
    ResponseAssessment.objects.filter(pk__in=non_responders.values("pk")[3:6]).update(
        voided_at=timezone.now()
    )
    for assessment in ResponseAssessment.objects.filter(
        cr2=True, course__state=State.POST_REMISSION_CHEMO
    )[:5]:
        ResponseAssessment.objects.create(
            course_id=assessment.course_id,
            assessed_on=assessment.assessed_on + timedelta(days=20),
            marrow="M3",
            cr2=False,
            em_status="none",
            recorded_by=assessment.recorded_by,
            recorded_at=assessment.recorded_at,
        )
    confirmed = TreatmentCourse.objects.filter(
        risk_group__isnull=False, state=State.INDUCTION
    ).order_by("pk")
    TreatmentCourse.objects.filter(pk__in=confirmed.values("pk")[:3]).update(
        decision_stale_since=date(2026, 11, 20), decision_stale_fields=["relapse_date"]
    )
    kinds = {k for _, k, _ in agree()}
    assert AlertKind.STRATIFICATION_STALE in kinds
