"""How long a course's milestones took: the delay measures the dashboards summarise,
defined once.

:func:`course_delays` is the one definition. The dashboards' maintained counters
(notifications.dashboards) and the from-scratch computation the tests check them
against both read it, so a change of meaning (what a block's delay is measured
against, which records count) is made here and reaches both.

Each measure is a queryset of rows that point at a course (``course_id``, and
``course__...`` paths for scoping) with the delay in whole days as ``days``, never
null. None of them is a correlated subquery: the first CR2 is a grouped minimum, one
pass over the assessments.
"""

from __future__ import annotations

from django.db.models import F, Min, Q, QuerySet

from config.db import DaysBetween
from courses.models import HsctReferral, PlannedStep, StepKind, StepStatus

# The measures, in the order the summary lists them.
MEASURES = ("hsct_referral", "cr2_to_transplant", "block_delay")


def course_delays() -> dict[str, QuerySet]:
    """{measure: rows with ``course_id`` and ``days``}, for courses with a start date
    (the confirmed stratification), in any state:

    * ``hsct_referral``: HSCT indicated, course start -> the referral's ``referred_on``;
    * ``cr2_to_transplant``: the first assessment with CR2 -> the transplant's
      ``performed_on``;
    * ``block_delay``: each block done, ``planned_on`` (the protocol's plan) ->
      ``done_on``; one row per block.

    Filter them on ``course__...`` (team, start date) or ``course_id``."""
    # The record managers leave voided records out; the join to the assessments goes
    # around them, so it says so itself.
    referrals = HsctReferral.objects.filter(course__start_date__isnull=False).order_by()
    cr2 = Q(course__assessments__cr2=True, course__assessments__voided_at__isnull=True)
    return {
        "hsct_referral": referrals.filter(course__hsct_indicated=True).annotate(
            days=DaysBetween(F("referred_on"), F("course__start_date"))
        ),
        "cr2_to_transplant": referrals.filter(performed_on__isnull=False)
        .annotate(first_cr2=Min("course__assessments__assessed_on", filter=cr2))
        .filter(first_cr2__isnull=False)
        .annotate(days=DaysBetween(F("performed_on"), F("first_cr2"))),
        "block_delay": PlannedStep.objects.filter(
            course__start_date__isnull=False,
            kind=StepKind.BLOCK,
            status=StepStatus.DONE,
            done_on__isnull=False,
        )
        .order_by()
        .annotate(days=DaysBetween(F("done_on"), F("planned_on"))),
    }
