"""Event-free survival: the pure part. No ORM, no clock, no settings.

* :func:`efs_observation` turns one course's dates into (duration in days, event?).
* :func:`kaplan_meier` turns (durations, events) into a Kaplan-Meier estimate with
  Greenwood standard errors, 95 % confidence intervals and numbers at risk.

The survival function, the confidence limits (lifelines' default: Greenwood variance on
the log(-log) scale, so the limits stay within 0..1) and the median come from lifelines'
KaplanMeierFitter. The Greenwood standard error of S(t) itself is not public in
lifelines, so it is summed here from lifelines' event table:
``SE(t) = S(t) * sqrt(sum over event times t_i <= t of d_i / (n_i * (n_i - d_i)))``.
It is undefined once S(t) reaches 0 (n_i = d_i) and reported as None from there on.
Checked against the textbook 6-MP arm of Freireich 1963 (tests/reports/test_survival.py).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

DAYS_PER_YEAR = 365.25

# Events and censoring for EFS. The conventions are the BFM/COG relapse trials' as
# ../shared/clinical-notes.md "Outcome conventions" records them — recalled [R], not
# checked against the primary papers: EFS from the relapse diagnosis; events are a
# second relapse, death from any cause, a second malignancy and non-response;
# non-response (no CR2, the course taken off protocol as refractory) is an event at
# time zero; a patient moved to alternative therapy after treatment failure is an
# event on that date, not censored; withdrawal and loss to follow-up censor; everyone
# else is censored at the last contact.
EFS_EVENT_KINDS: tuple[str, ...] = ("second_relapse", "death", "secondary_malignancy")
# A follow-up contact that finds the patient dead, or alive with disease, is an event on
# its date when nothing earlier explains it (local reading [I]: the death's or the
# relapse's own date is not known; counting the patient event-free would flatter).
EVENT_CONTACT_STATUSES: tuple[str, ...] = ("dead", "alive_with_disease")
CENSOR_EVENT_KINDS: tuple[str, ...] = ("withdrawal", "lost_to_follow_up")
# Off-protocol reasons: which end a course as an event (at time zero, or on the day),
# which as a censoring, and which take it out of every figure.
OFF_PROTOCOL_TIME_ZERO_REASONS: tuple[str, ...] = ("refractory",)
OFF_PROTOCOL_EVENT_REASONS: tuple[str, ...] = (
    "treatment_failure_alternative_therapy",
    "second_relapse",
    "death",
)
OFF_PROTOCOL_CENSOR_REASONS: tuple[str, ...] = ("withdrawal", "lost_to_follow_up")
OFF_PROTOCOL_EXCLUDED_REASONS: tuple[str, ...] = ("entered_in_error",)


def efs_observation(
    *,
    start: date,
    event_dates: Iterable[date | None],
    censor_dates: Iterable[date | None],
    seen_dates: Iterable[date | None],
    today: date,
) -> tuple[int, bool]:
    """(days from ``start``, event observed?) for one course.

    The first event counts. A withdrawal or loss to follow-up before it censors at its
    date (on the same day, the event wins). Otherwise the course is censored at its last
    contact: the latest known date (``seen_dates``), never after ``today``. An event
    dated ``start`` (non-response, at time zero) or before it counts as day 0."""
    first_event = min((d for d in event_dates if d is not None), default=None)
    first_censor = min((d for d in censor_dates if d is not None), default=None)
    if first_event is not None and (first_censor is None or first_event <= first_censor):
        end, observed = min(first_event, today), True
    elif first_censor is not None:
        end, observed = min(first_censor, today), False
    else:
        last_seen = max((d for d in seen_dates if d is not None), default=start)
        end, observed = min(max(last_seen, start), today), False
    return max((end - start).days, 0), observed


@dataclass(frozen=True, slots=True)
class KmPoint:
    """The estimate from ``time`` (days) until the next point: S(t), its Greenwood SE,
    the 95 % confidence limits, and what happened at ``time``."""

    time: float
    survival: float
    se: float | None
    ci_lower: float | None
    ci_upper: float | None
    at_risk: int
    events: int
    censored: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "time_days": _num(self.time),
            "time_years": round(self.time / DAYS_PER_YEAR, 4),
            "survival": _round(self.survival),
            "se": _round(self.se),
            "ci_lower": _round(self.ci_lower),
            "ci_upper": _round(self.ci_upper),
            "at_risk": self.at_risk,
            "events": self.events,
            "censored": self.censored,
        }


@dataclass(frozen=True, slots=True)
class KmEstimate:
    n: int
    events: int
    median: float | None  # days; None while S(t) has not fallen to 0.5
    points: tuple[KmPoint, ...]
    durations: tuple[float, ...] = field(repr=False, default=())

    @property
    def max_time(self) -> float | None:
        return max(self.durations) if self.durations else None

    def at(self, time: float) -> KmPoint | None:
        """The step of the curve in force at ``time``; None beyond the follow-up (the
        estimate is not defined after the longest observed time)."""
        if not self.points or self.max_time is None or time > self.max_time:
            return None
        current = self.points[0]
        for point in self.points:
            if point.time > time:
                break
            current = point
        return current

    def at_risk(self, time: float) -> int:
        """Number still followed (neither event nor censored) just before ``time``."""
        return sum(1 for d in self.durations if d >= time)


def kaplan_meier(
    durations: Sequence[float], events: Sequence[bool], alpha: float = 0.05
) -> KmEstimate:
    """The Kaplan-Meier estimate of S(t) from right-censored observations."""
    if len(durations) != len(events):
        raise ValueError("durations and events must have the same length")
    if not durations:
        return KmEstimate(n=0, events=0, median=None, points=())
    if any(d < 0 for d in durations):
        raise ValueError("durations must not be negative")
    # Imported here: lifelines pulls in pandas and scipy (a second or two), which only
    # the outcomes endpoint needs.
    from lifelines import KaplanMeierFitter

    fitter = KaplanMeierFitter(alpha=alpha).fit(
        [float(d) for d in durations], event_observed=[bool(e) for e in events]
    )
    table = fitter.event_table
    survival = fitter.survival_function_.iloc[:, 0]
    limits = fitter.confidence_interval_survival_function_
    lower, upper = limits.iloc[:, 0], limits.iloc[:, 1]
    greenwood, defined = 0.0, True
    points = []
    for time, row in table.iterrows():
        deaths, at_risk = int(row["observed"]), int(row["at_risk"])
        if deaths:
            if at_risk > deaths:
                greenwood += deaths / (at_risk * (at_risk - deaths))
            else:
                defined = False  # S drops to 0: Greenwood's variance is undefined
        s = float(survival.loc[time])
        points.append(
            KmPoint(
                time=float(time),
                survival=s,
                se=s * math.sqrt(greenwood) if defined else None,
                ci_lower=_finite(lower.loc[time]),
                ci_upper=_finite(upper.loc[time]),
                at_risk=at_risk,
                events=deaths,
                censored=int(row["censored"]),
            )
        )
    median = float(fitter.median_survival_time_)
    return KmEstimate(
        n=len(durations),
        events=sum(1 for e in events if e),
        median=median if math.isfinite(median) else None,
        points=tuple(points),
        durations=tuple(float(d) for d in durations),
    )


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(value, digits)


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


# --- Published reference figures --------------------------------------------------

# ALL-REZ BFM 90 (Tallen et al., J Clin Oncol 2010;28:2339) as the seed summary article
# quotes them; see ../shared/clinical-notes.md. Not checked against the paper's tables
# (the A/B figures are close to ALL-REZ BFM 87's). Fractions, not percent. The seed
# gives them with no time horizon, so none is claimed here: they are not "10-year"
# figures, and nothing reads them as the value of a curve at some year.
REFERENCE_FIGURES: dict[str, dict[str, Any]] = {
    "all-rez-bfm-90": {
        "protocol": "all-rez-bfm-90",
        "source": "Tallen et al., J Clin Oncol 2010;28:2339 (ALL-REZ BFM 90), as quoted by "
        "the seed article (Treatment of Relapsed ALL Using the ALL-REZ BFM90 Protocol)",
        "verification": "seed article, not verified against the paper's tables",
        "note": "The A and B figures are close to ALL-REZ BFM 87's.",
        "horizon_years": None,
        "horizon": "not stated by the source: the seed gives these EFS figures without a "
        "time horizon",
        "groups": [
            {"group": "A", "efs": 0.17, "efs_se": 0.03, "cr2_rate": 0.83},
            {"group": "B", "efs": 0.43, "efs_se": 0.04, "cr2_rate": 0.94},
            {"group": "C", "efs": 0.54, "efs_se": 0.06, "cr2_rate": 1.00},
            {"group": "PPG", "efs": 0.15, "efs_se": 0.03, "cr2_rate": None},
        ],
    },
}
