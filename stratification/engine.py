"""The stratification engine: facts + protocol definition -> a proposed decision.

Pure: no ORM, no clock, no settings, nothing from Django. Every input is an argument,
so the same facts and definition always give the same decision — in the API's dry run,
in the persisted decision, in the cohort benchmark and in the tests.

Three decisions, each recorded as a :class:`Reason` naming the rule that made it:

1. time point, from the definition's thresholds (BFM relapse trials; World J Hematol
   2014 review, Table 2): *very early* = relapse < diagnosis + 18 calendar months;
   *late* = front-line end given and relapse >= end + 6 calendar months; *early* =
   neither. A relapse during front-line therapy (no end date) is never late.
2. risk group: the definition's ordered rules, first match wins; no match means no
   group and status ``needs_review`` (a clinician assigns the group with a reason).
3. HSCT indication of the group: true, false, or MRD-dependent (None while unknown).

The result is a proposal; a clinician confirms it (``stratification.services``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from stratification.definitions import (
    MRD_TIME_POINT_WORDS,
    TIME_POINT_RULE_PREFIX,
    HsctIndication,
    ProtocolDefinition,
    TimePointThresholds,
)
from stratification.facts import IMMUNOPHENOTYPES, SITES, RelapseFacts, TimePoint

Status = Literal["assigned", "needs_review"]
TIME_POINT_RULE_IDS: dict[str, str] = {
    tp: f"{TIME_POINT_RULE_PREFIX}{tp}" for tp in ("very_early", "early", "late")
}
_SITES = frozenset(SITES)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_IMMUNOPHENOTYPES = frozenset(IMMUNOPHENOTYPES)


@dataclass(frozen=True, slots=True)
class Reason:
    rule: str
    text: str
    source: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "text": self.text, "source": self.source}


@dataclass(frozen=True, slots=True)
class Decision:
    protocol: str
    protocol_version: str
    time_point: TimePoint
    site: str
    risk_group: str | None
    status: Status
    hsct_indicated: bool | None
    reasons: tuple[Reason, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "time_point": self.time_point,
            "site": self.site,
            "risk_group": self.risk_group,
            "status": self.status,
            "hsct_indicated": self.hsct_indicated,
            "reasons": [r.as_dict() for r in self.reasons],
        }


def add_months(day: date, months: int) -> date:
    """``day`` plus calendar months, the day clamped to the target month's last day
    (2020-08-31 + 18 months = 2022-02-28). Same result as dateutil's relativedelta
    (a property test checks it), without its cost in a 100k-row loop."""
    years, month0 = divmod(day.month - 1 + months, 12)
    year = day.year + years
    if day.day <= 28:  # every month has these days
        return date(year, month0 + 1, day.day)
    if month0 == 1:
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        last = 29 if leap else 28
    else:
        last = _DAYS_IN_MONTH[month0]
    return date(year, month0 + 1, min(day.day, last))


def time_point_of(facts: RelapseFacts, thresholds: TimePointThresholds) -> tuple[TimePoint, Reason]:
    """The time point of the relapse and the reason, quoting the cut-off dates."""
    relapse = facts.relapse_date
    very_early_limit = add_months(facts.initial_diagnosis_date, thresholds.very_early_months)
    m_ve = thresholds.very_early_months
    m_late = thresholds.late_months
    # Checked first: a relapse within the first months after diagnosis is very early
    # even if an (aborted) front-line therapy ended long enough before it to look late.
    if relapse < very_early_limit:
        text = (
            f"Very early: relapse on {relapse} is before initial diagnosis + {m_ve} "
            f"calendar months ({very_early_limit})."
        )
        return "very_early", Reason(TIME_POINT_RULE_IDS["very_early"], text, thresholds.citation)
    end = facts.frontline_therapy_end_date
    if end is None:
        text = (
            f"Early: relapse on {relapse} is on or after initial diagnosis + {m_ve} "
            f"calendar months ({very_early_limit}) and during front-line therapy (no end "
            "date), which is never late."
        )
        return "early", Reason(TIME_POINT_RULE_IDS["early"], text, thresholds.citation)
    late_limit = add_months(end, m_late)
    if relapse >= late_limit:
        text = (
            f"Late: relapse on {relapse} is on or after the end of front-line therapy + "
            f"{m_late} calendar months ({late_limit})."
        )
        return "late", Reason(TIME_POINT_RULE_IDS["late"], text, thresholds.citation)
    text = (
        f"Early: relapse on {relapse} is on or after initial diagnosis + {m_ve} calendar "
        f"months ({very_early_limit}) and before the end of front-line therapy + {m_late} "
        f"calendar months ({late_limit})."
    )
    return "early", Reason(TIME_POINT_RULE_IDS["early"], text, thresholds.citation)


def hsct_of(indication: HsctIndication, facts: RelapseFacts) -> tuple[bool | None, Reason]:
    """The group's HSCT indication; an MRD-dependent one is decided by the MRD value
    (Eckert 2013: S2 indicated at >= 10^-3 at the end of induction)."""
    if indication.indicated is True or indication.indicated is False:
        return indication.indicated, Reason(indication.id, indication.text, indication.citation)
    threshold = indication.mrd_threshold
    point = MRD_TIME_POINT_WORDS.get(indication.mrd_time_point or "", "")
    # Only end-of-induction MRD exists in the facts; the schema allows no other point.
    mrd = facts.mrd_end_of_induction
    if mrd is None:
        outcome: bool | None = None
        detail = f"MRD at {point} not given: undecided until it is known."
    elif mrd >= threshold:
        outcome = True
        detail = f"MRD at {point} {mrd:g} is at or above {threshold:g}: indicated."
    else:
        outcome = False
        detail = f"MRD at {point} {mrd:g} is below {threshold:g}: not indicated."
    return outcome, Reason(indication.id, f"{indication.text} {detail}", indication.citation)


def stratify(facts: RelapseFacts, protocol: ProtocolDefinition) -> Decision:
    """Propose a risk group and HSCT indication for one relapse.

    ``facts`` must have passed :func:`stratification.facts.validate_facts`; the engine
    only refuses values it cannot classify at all (an unknown site or immunophenotype).
    """
    if facts.site not in _SITES:
        raise ValueError(f"unknown site {facts.site!r}")
    if facts.immunophenotype not in _IMMUNOPHENOTYPES:
        raise ValueError(f"unknown immunophenotype {facts.immunophenotype!r}")

    time_point, time_reason = time_point_of(facts, protocol.time_points)

    # Ordered rules, first match wins (the order is part of the definition: in BFM 90,
    # PPG is checked before A/B so that a T-lineage marrow relapse is PPG, not A or B).
    for rule in protocol.rules:
        if rule.when.matches(time_point, facts.site, facts.immunophenotype, facts.em_sites):
            hsct, hsct_reason = hsct_of(protocol.hsct_indication[rule.group], facts)
            return Decision(
                protocol=protocol.slug,
                protocol_version=protocol.version,
                time_point=time_point,
                site=facts.site,
                risk_group=rule.group,
                status="assigned",
                hsct_indicated=hsct,
                reasons=(time_reason, Reason(rule.id, rule.text, rule.citation), hsct_reason),
            )

    fallback = protocol.fallback
    return Decision(
        protocol=protocol.slug,
        protocol_version=protocol.version,
        time_point=time_point,
        site=facts.site,
        risk_group=None,
        status="needs_review",
        # No group, no HSCT rule: the indication follows the group a clinician assigns.
        hsct_indicated=None,
        reasons=(time_reason, Reason(fallback.id, fallback.text, fallback.citation)),
    )
