"""Delay statistics for the dashboard summary: how long HSCT referrals, transplants and
blocks take, as counts, medians and 90th percentiles.

The delays themselves are defined once, in :func:`courses.delays.course_delays`; the
sweep keeps a histogram of them per team and course start date
(notifications.dashboards), and the percentiles here are PostgreSQL's percentile_cont
interpolation applied to that histogram: the same figures as sorting every value,
without reading one row per block."""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from itertools import accumulate
from typing import Any

from django.db.models import QuerySet

from courses.delays import MEASURES
from notifications import dashboards
from reports.counters import read_counters
from teams.models import Team


@dataclass(frozen=True, slots=True)
class DelayStat:
    count: int
    median_days: float | None
    p90_days: float | None


@dataclass(frozen=True, slots=True)
class DelayStatistics:
    hsct_referral: DelayStat  # clinical start -> HsctReferral.referred_on (HSCT indicated)
    cr2_to_transplant: DelayStat  # first assessment with CR2 -> HsctReferral.performed_on
    block_delay: DelayStat  # blocks done: done_on - planned_on (one value per block)

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return asdict(self)


def percentile_cont(sorted_values: Sequence[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont interpolation, on sorted values: the value at
    ``fraction * (n - 1)``, linear between the two nearest."""
    if not sorted_values:
        return None
    position = fraction * (len(sorted_values) - 1)
    lower, upper = math.floor(position), math.ceil(position)
    low, high = sorted_values[lower], sorted_values[upper]
    return float(low + (high - low) * (position - lower))


def percentile_of_counts(counts: Mapping[int, int], fraction: float) -> float | None:
    """The same interpolation on a histogram ({value: how many}): what
    :func:`percentile_cont` gives for the sorted values the histogram counts."""
    total = sum(counts.values())
    if not total:
        return None
    position = fraction * (total - 1)
    lower, upper = math.floor(position), math.ceil(position)
    values = sorted(counts)
    ends = list(accumulate(counts[v] for v in values))  # rank of each value's last copy + 1

    def at(rank: int) -> int:
        return values[bisect_right(ends, rank)]

    low, high = at(lower), at(upper)
    return float(low + (high - low) * (position - lower))


def delay_stat(counts: Mapping[int, int]) -> DelayStat:
    """Count, median and 90th percentile of one measure's histogram, in days."""

    def _r(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    return DelayStat(
        count=sum(counts.values()),
        median_days=_r(percentile_of_counts(counts, 0.5)),
        p90_days=_r(percentile_of_counts(counts, 0.9)),
    )


def statistics_of(histograms: Mapping[str, Mapping[int, int]]) -> DelayStatistics:
    """{measure: {days: how many}} -> the statistics (a missing measure counts 0)."""
    return DelayStatistics(**{m: delay_stat(histograms.get(m, {})) for m in MEASURES})


def delay_statistics(
    teams: QuerySet[Team] | Iterable[int],
    *,
    started_from: date | None = None,
    started_to: date | None = None,
) -> DelayStatistics:
    """Delays of the courses of ``teams`` (a Team queryset or team ids — pass only the
    requester's) whose start date falls in [started_from, started_to] (either end
    open), from the counters the sweep keeps (one query, whatever the number of
    courses). The measures are defined in :func:`courses.delays.course_delays`."""
    histograms: dict[str, dict[int, int]] = defaultdict(dict)
    for _, measure, days, n in read_counters(
        teams, started_from=started_from, started_to=started_to, names=[dashboards.DELAY]
    ):
        histograms[measure][days] = n
    return statistics_of(histograms)
