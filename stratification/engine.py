"""The stratification engine: facts + protocol definition -> a proposed decision.

Pure: no ORM, no clock, no settings, nothing from Django. Every input is an argument,
so the same facts and definition always give the same decision — in the API's dry run,
in the persisted decision, in the cohort benchmark and in the tests.

The decision is made in steps, each recorded as a :class:`Reason` naming the rule that
made it, its source and its confidence (stated / recalled / inferred):

1. time point, from the definition's thresholds (BFM relapse trials; World J Hematol
   2014 review, Table 2): *very early* = relapse < diagnosis + 18 calendar months;
   *late* = front-line therapy completed and relapse >= end + 6 calendar months;
   *early* = neither, including a relapse during front-line therapy. When the front-line
   status is unknown and it decides between early and late, the time point is not
   guessed: the decision needs review and its reason gives the cut-off date and what
   each answer would give (both computed by this engine).
2. population: a case outside the protocol's population (second relapse, prior HSCT,
   BCR::ABL1-positive, infant, MPAL) gets no group; unknown eligibility facts stratify
   with a warning or need review, as the definition says (an unknown relapse number or
   prior HSCT needs review in both built-in protocols). The site must be what it says:
   a marrow site needs its blast count, an isolated marrow relapse with M2 marrow (5 to
   < 25 % blasts) and an isolated EM relapse without a marrow blast count need review.
3. risk group: the definition's ordered rules, first match wins. A rule may send the
   case to review with the readings of its sources; no match means no group. Either
   way the status is ``needs_review`` and a clinician assigns the group with a reason.
4. HSCT indication of the group: true, false, or MRD-dependent (None while unknown).

The result is a proposal; a clinician confirms it (``stratification.services``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Literal, NamedTuple

from stratification.definitions import (
    MRD_TIME_POINT_WORDS,
    TIME_POINT_RULE_PREFIX,
    Confidence,
    HsctIndication,
    ProtocolDefinition,
    TimePointThresholds,
)
from stratification.facts import (
    EM_MARROW_SOURCE,
    IMMUNOPHENOTYPES,
    ISOLATED_BM_MIN_BLASTS,
    M2_RELAPSE_SOURCE,
    MARROW_SITES,
    MRD_QUALITATIVE_RESULTS,
    SITE_DEFINITION_SOURCE,
    SITES,
    RelapseFacts,
    TimePoint,
)

Status = Literal["assigned", "needs_review"]
TIME_POINT_RULE_IDS: dict[str, str] = {
    tp: f"{TIME_POINT_RULE_PREFIX}{tp}" for tp in ("very_early", "early", "late")
}
# The time point depends on a front-line status that is not known.
TIME_POINT_UNDETERMINED_RULE = f"{TIME_POINT_RULE_PREFIX}frontline_status_unknown"
# "on_therapy" long after diagnosis: refused unless confirmed, then a warning.
ON_THERAPY_IMPLAUSIBLE_RULE = "frontline_status.on_therapy_implausible"
ON_THERAPY_CONFIRMED_RULE = "frontline_status.on_therapy_implausible_confirmed"
BLASTS_MISSING_RULE = "site.bm_blast_percent_missing"
# An isolated marrow relapse with M2 marrow (5 to < 25 % blasts): for review.
M2_MARROW_RULE = "site.isolated_bm_m2_marrow"
# An isolated EM relapse whose marrow was not assessed: not known to be isolated.
EM_MARROW_NOT_ASSESSED_RULE = "site.isolated_em_marrow_not_assessed"
_SITES = frozenset(SITES)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_IMMUNOPHENOTYPES = frozenset(IMMUNOPHENOTYPES)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a step of the decision came out as it did (also the shape of a warning)."""

    rule: str
    text: str
    source: str
    confidence: Confidence

    def as_dict(self) -> dict[str, str]:
        return {
            "rule": self.rule,
            "text": self.text,
            "source": self.source,
            "confidence": self.confidence,
        }


@dataclass(frozen=True, slots=True)
class CutOffs:
    """The dates the time point of this relapse turns on.

    ``very_early_before``: a relapse before it is very early. ``late_from``: a relapse on
    or after it is late (None unless front-line therapy is completed with an end date).
    ``late_if_frontline_ended_on_or_before``: the latest front-line end date that would
    make this relapse late (None unless the front-line status is unknown, when the
    decision hangs on it). ``on_therapy_implausible_after``: "on therapy" at a relapse
    after it is implausible.
    """

    very_early_before: date
    late_from: date | None
    late_if_frontline_ended_on_or_before: date | None
    on_therapy_implausible_after: date

    def as_dict(self) -> dict[str, str | None]:
        return {
            "very_early_before": self.very_early_before.isoformat(),
            "late_from": _iso(self.late_from),
            "late_if_frontline_ended_on_or_before": _iso(self.late_if_frontline_ended_on_or_before),
            "on_therapy_implausible_after": self.on_therapy_implausible_after.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    protocol: str
    protocol_version: str
    # None: not determined (front-line status unknown where it decides).
    time_point: TimePoint | None
    site: str
    risk_group: str | None
    status: Status
    hsct_indicated: bool | None
    reasons: tuple[Reason, ...]
    warnings: tuple[Reason, ...] = ()
    cut_offs: CutOffs | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "protocol_version": self.protocol_version,
            "time_point": self.time_point,
            "cut_offs": self.cut_offs.as_dict() if self.cut_offs else None,
            "site": self.site,
            "risk_group": self.risk_group,
            "status": self.status,
            "hsct_indicated": self.hsct_indicated,
            "warnings": [w.as_dict() for w in self.warnings],
            "reasons": [r.as_dict() for r in self.reasons],
        }


class MrdHsct(NamedTuple):
    """The HSCT indication an MRD result gives under an MRD-threshold rule."""

    indicated: bool | None
    basis: str
    rule: str
    source: str
    confidence: Confidence

    def reason(self, prefix: str) -> Reason:
        return Reason(self.rule, f"{prefix} {self.basis}".strip(), self.source, self.confidence)


@functools.lru_cache(maxsize=32)
def _static_reasons(protocol: ProtocolDefinition) -> dict[str, Reason]:
    """The reasons whose words never depend on the facts (rules, readings, fallback,
    fixed HSCT indications, unknown-value policies), built once per definition: a cohort
    import classifies 100k relapses, and fewer objects per decision means less garbage
    collection. Definitions are immutable and hash by identity."""
    entries: list[Any] = [*protocol.rules, protocol.fallback]
    entries += [reading for rule in protocol.rules for reading in rule.readings]
    entries += list(protocol.hsct_indication.values())
    entries += [c.if_unknown for c in protocol.population.criteria if c.if_unknown]
    return {e.id: Reason(e.id, e.text, e.citation, e.confidence) for e in entries}


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day is not None else None


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


def latest_start_for(end: date, months: int) -> date:
    """The latest day ``d`` with ``add_months(d, months) <= end``. Clamping makes
    several days map onto a month's last day (2021-08-29..31 + 6 months = 2022-02-28),
    so step forward from the naive answer while the next day still fits."""
    day = add_months(end, -months)
    while add_months(day + timedelta(days=1), months) <= end:
        day += timedelta(days=1)
    return day


def cut_offs_of(facts: RelapseFacts, thresholds: TimePointThresholds) -> CutOffs:
    diagnosis = facts.initial_diagnosis_date
    end = facts.frontline_therapy_end_date
    completed = facts.frontline_status == "completed" and end is not None
    very_early_before = add_months(diagnosis, thresholds.very_early_months)
    undetermined = facts.frontline_status == "unknown" or (
        facts.frontline_status == "completed" and end is None
    )
    return CutOffs(
        very_early_before=very_early_before,
        late_from=add_months(end, thresholds.late_months) if completed else None,
        late_if_frontline_ended_on_or_before=(
            latest_start_for(facts.relapse_date, thresholds.late_months)
            if undetermined and facts.relapse_date >= very_early_before
            else None
        ),
        on_therapy_implausible_after=add_months(diagnosis, thresholds.on_therapy_plausible.value),
    )


def _after_very_early(facts: RelapseFacts, thresholds: TimePointThresholds, cut: CutOffs) -> str:
    return (
        f"relapse on {facts.relapse_date} is on or after initial diagnosis + "
        f"{thresholds.very_early_months} calendar months ({cut.very_early_before})"
    )


def time_point_of(
    facts: RelapseFacts, thresholds: TimePointThresholds, cut_offs: CutOffs | None = None
) -> tuple[TimePoint | None, Reason]:
    """The time point of the relapse and the reason, quoting the cut-off dates. None
    when the front-line status is unknown and decides between early and late."""
    cut = cut_offs or cut_offs_of(facts, thresholds)
    relapse = facts.relapse_date
    very_early_limit = cut.very_early_before
    m_ve = thresholds.very_early_months
    m_late = thresholds.late_months

    def reason(tp: str, text: str) -> Reason:
        rule = TIME_POINT_RULE_IDS.get(tp, TIME_POINT_UNDETERMINED_RULE)
        return Reason(rule, text, thresholds.citation, thresholds.confidence)

    # Checked first: a relapse within the first months after diagnosis is very early
    # whatever the front-line status (even an aborted therapy that ended > 6 months ago).
    if relapse < very_early_limit:
        text = (
            f"Very early: relapse on {relapse} is before initial diagnosis + {m_ve} "
            f"calendar months ({very_early_limit})."
        )
        return "very_early", reason("very_early", text)
    after_ve = _after_very_early(facts, thresholds, cut)
    if facts.frontline_status == "on_therapy":
        text = f"Early: {after_ve} and during front-line therapy, which is never late."
        return "early", reason("early", text)
    if cut.late_from is not None:
        if relapse >= cut.late_from:
            text = (
                f"Late: relapse on {relapse} is on or after the end of front-line therapy "
                f"+ {m_late} calendar months ({cut.late_from})."
            )
            return "late", reason("late", text)
        text = (
            f"Early: {after_ve} and before the end of front-line therapy + {m_late} "
            f"calendar months ({cut.late_from})."
        )
        return "early", reason("early", text)
    return None, reason("undetermined", _undetermined_text(after_ve, cut))


def _undetermined_text(
    after_very_early: str, cut: CutOffs, late: str = "late", early: str = "early"
) -> str:
    return (
        f"Time point not determined: {after_very_early}, and the front-line status is "
        f"unknown (neither completed with an end date nor on_therapy): {late} if "
        f"front-line therapy ended on or before {cut.late_if_frontline_ended_on_or_before}; "
        f"{early} if it ended later or the relapse happened during front-line therapy."
    )


def hsct_from_mrd(
    rule: HsctIndication,
    value: float | None,
    qualitative: str | None = None,
    sensitivity: float | None = None,
) -> MrdHsct:
    """The HSCT indication of an MRD-threshold rule (ALL-REZ BFM 2002 S2, Eckert 2013:
    indicated at >= 10^-3 at the end of induction) for one MRD result.

    ``value``: the quantified result as a fraction (10^-3 = 0.001), or None. ``qualitative``:
    None for a quantified value (or no result), else ``negative`` or
    ``positive_not_quantifiable``, whose meaning the definition states (``mrd_results``):
    ``below_threshold_if_sensitive`` reads the result as below the threshold when
    ``sensitivity`` — the limit the result lies below: the detection limit for a negative
    result, the quantitative range's lower bound for a positive-not-quantifiable one — is
    at or below the threshold, and as undecided otherwise; ``undecided`` leaves it to a
    clinician. Returns ``indicated`` (None: undecided) with the basis in words, and the
    rule, source and confidence that decided it.
    """
    if rule.indicated != "mrd_threshold" or rule.mrd_threshold is None:
        raise ValueError(f"{rule.id} is not an MRD-threshold rule")
    threshold = rule.mrd_threshold
    point = MRD_TIME_POINT_WORDS.get(rule.mrd_time_point or "", "")
    if qualitative is None:
        if value is None:
            basis = f"MRD at {point} not given: undecided until it is known."
            return MrdHsct(None, basis, rule.id, rule.citation, rule.confidence)
        indicated = value >= threshold
        words = "is at or above" if indicated else "is below"
        verdict = "indicated" if indicated else "not indicated"
        basis = f"MRD at {point} {value:g} {words} {threshold:g}: {verdict}."
        return MrdHsct(indicated, basis, rule.id, rule.citation, rule.confidence)
    if qualitative not in MRD_QUALITATIVE_RESULTS:
        raise ValueError(f"unknown qualitative MRD result {qualitative!r}")
    if value is not None:
        raise ValueError(f"a {qualitative} MRD result has no value (got {value!r})")
    result_rule = rule.mrd_results.get(qualitative)
    if result_rule is None:
        raise ValueError(f"{rule.id} does not say what a {qualitative} MRD result means")
    words = qualitative.replace("_", " ").replace("positive not", "positive, not")
    at = f" at sensitivity {sensitivity:g}" if sensitivity is not None else ""
    below = (
        result_rule.treatment == "below_threshold_if_sensitive"
        and sensitivity is not None
        and sensitivity <= threshold
    )
    if below:
        basis = (
            f"MRD at {point} {words}{at}, which is at or below {threshold:g}: below the "
            f"threshold, not indicated. {result_rule.text}"
        )
        outcome: bool | None = False
    else:
        basis = (
            f"MRD at {point} {words}{at or ' (sensitivity not recorded)'}: does not show "
            f"whether MRD is below {threshold:g}, undecided. {result_rule.text}"
        )
        outcome = None
    return MrdHsct(outcome, basis, result_rule.id, result_rule.citation, result_rule.confidence)


def hsct_of(
    indication: HsctIndication, facts: RelapseFacts, static: dict[str, Reason] | None = None
) -> tuple[bool | None, Reason]:
    """The group's HSCT indication; an MRD-dependent one is decided by the MRD value."""
    if indication.indicated is True or indication.indicated is False:
        reason = (static or {}).get(indication.id) or Reason(
            indication.id, indication.text, indication.citation, indication.confidence
        )
        return indication.indicated, reason
    # Only a quantified end-of-induction MRD exists in the facts; the schema allows no
    # other time point.
    result = hsct_from_mrd(indication, facts.mrd_end_of_induction)
    return result.indicated, result.reason(indication.text)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the rules give for one time point."""

    group: str | None
    hsct_indicated: bool | None
    reasons: tuple[Reason, ...]

    def summary(self) -> str:
        rule = self.reasons[0].rule
        if self.group is None:
            return f"no group, needs review ({rule})"
        hsct = {True: "indicated", False: "not indicated", None: "undecided until MRD is known"}
        return f"group {self.group} ({rule}), HSCT {hsct[self.hsct_indicated]}"


def _classify(facts: RelapseFacts, protocol: ProtocolDefinition, time_point: str) -> _Outcome:
    static = _static_reasons(protocol)
    # Ordered rules, first match wins (the order is part of the definition: in BFM 90,
    # PPG is checked before A/B so that a T-lineage marrow relapse is PPG, not A or B).
    for rule in protocol.rules:
        if not rule.when.matches(time_point, facts.site, facts.immunophenotype, facts.em_sites):
            continue
        if rule.group is None:
            readings = tuple(static[r.id] for r in rule.readings)
            return _Outcome(None, None, (static[rule.id], *readings))
        hsct, hsct_reason = hsct_of(protocol.hsct_indication[rule.group], facts, static)
        return _Outcome(rule.group, hsct, (static[rule.id], hsct_reason))
    # No group, no HSCT rule: the indication follows the group a clinician assigns.
    return _Outcome(None, None, (static[protocol.fallback.id],))


def _population(
    facts: RelapseFacts, protocol: ProtocolDefinition
) -> tuple[list[Reason], list[Reason]]:
    """(exclusions, warnings) from the protocol's population."""
    exclusions: list[Reason] = []
    warnings: list[Reason] = []
    for criterion in protocol.population.criteria:
        value = getattr(facts, criterion.fact)
        if criterion.is_unknown(value) and criterion.if_unknown is not None:
            policy = criterion.if_unknown
            reason = _static_reasons(protocol)[policy.id]
            (warnings if policy.action == "warn" else exclusions).append(reason)
        elif criterion.is_unknown(value) or not criterion.admits(value):
            shown = str(value).lower() if isinstance(value, bool) else value
            text = f"{criterion.text} Given: {criterion.fact} = {shown}."
            exclusions.append(Reason(criterion.id, text, criterion.citation, criterion.confidence))
    return exclusions, warnings


def _frontline_plausibility(
    facts: RelapseFacts, protocol: ProtocolDefinition, cut: CutOffs
) -> Reason | None:
    """A reason when "on therapy" is implausible for this relapse (None otherwise):
    a warning if a clinician confirmed it, else a reason to review."""
    if facts.frontline_status != "on_therapy" or facts.relapse_date <= (
        cut.on_therapy_implausible_after
    ):
        return None
    limit = protocol.time_points.on_therapy_plausible
    text = (
        f"Front-line status on_therapy at a relapse on {facts.relapse_date}, more than "
        f"{limit.value} months after diagnosis (after {cut.on_therapy_implausible_after}). "
        f"{limit.text}"
    )
    if facts.confirm_implausible:
        text += f" Confirmed by the clinician: {facts.implausible_reason.strip()}"
        return Reason(ON_THERAPY_CONFIRMED_RULE, text, limit.citation, limit.confidence)
    text += " Not confirmed: give the front-line status again, or confirm it with a reason."
    return Reason(ON_THERAPY_IMPLAUSIBLE_RULE, text, limit.citation, limit.confidence)


def _site_review(facts: RelapseFacts) -> Reason | None:
    """Why the site as given cannot be stratified as it stands (None: it can). The site
    decides the group, so a site the marrow count does not back is reviewed, not
    trusted."""
    site, blasts = facts.site, facts.bm_blast_percent
    if site in MARROW_SITES and blasts is None:
        text = (
            f"Site {site} without a marrow blast count: the site cannot be checked "
            "(>= 25 % blasts defines isolated_bm, >= 5 % combined)."
        )
        return Reason(BLASTS_MISSING_RULE, text, SITE_DEFINITION_SOURCE, "stated")
    if site == "isolated_bm" and blasts is not None and blasts < ISOLATED_BM_MIN_BLASTS:
        text = (
            f"Site isolated_bm with {blasts:g} % marrow blasts and no extramedullary "
            "disease: 5 to under 25 % blasts (M2 marrow) without extramedullary disease is "
            "not a BFM relapse category on its own (>= 25 %, M3, defines an isolated marrow "
            "relapse). It needs confirmation, e.g. by MRD, and a clinician assigns the group."
        )
        source = f"{M2_RELAPSE_SOURCE}; {SITE_DEFINITION_SOURCE}"
        return Reason(M2_MARROW_RULE, text, source, "stated")
    if site == "isolated_em" and blasts is None:
        # Only the blast count reaches the facts: a marrow MRD at relapse is a course
        # record (MrdResult, time point at_relapse), made after the decision.
        text = (
            "Site isolated_em without a marrow blast count: the marrow was not assessed, so "
            "the relapse is not known to be isolated. Submicroscopic marrow involvement "
            "(MRD >= 10^-4) was found in 46 of 64 apparently isolated extramedullary "
            "relapses, and it is prognostic. Record the marrow blast count (< 5 % for "
            "isolated_em, >= 5 % is combined); a clinician assigns the group."
        )
        return Reason(EM_MARROW_NOT_ASSESSED_RULE, text, EM_MARROW_SOURCE, "stated")
    return None


def on_therapy_errors(facts: RelapseFacts, protocol: ProtocolDefinition) -> dict[str, list[str]]:
    """Protocol-dependent fact checks ({field: [message]}; empty = fine): "on therapy"
    more than the protocol's plausible months after diagnosis is refused unless
    ``confirm_implausible`` is given (with ``implausible_reason``, which
    :func:`stratification.facts.validate_facts` requires)."""
    cut = cut_offs_of(facts, protocol.time_points)
    reason = _frontline_plausibility(facts, protocol, cut)
    if reason is None or reason.rule == ON_THERAPY_CONFIRMED_RULE:
        return {}
    months = protocol.time_points.on_therapy_plausible.value
    return {
        "frontline_status": [
            f"on_therapy is implausible for a relapse on {facts.relapse_date}, more than "
            f"{months} months after initial diagnosis (after {cut.on_therapy_implausible_after};"
            f" {protocol.slug} local default): give completed with "
            "frontline_therapy_end_date, or unknown — or confirm with confirm_implausible: "
            "true and implausible_reason"
        ]
    }


def stratify(facts: RelapseFacts, protocol: ProtocolDefinition) -> Decision:
    """Propose a risk group and HSCT indication for one relapse.

    ``facts`` must have passed :func:`stratification.facts.validate_facts` (and
    :func:`on_therapy_errors`); the engine only refuses values it cannot classify at
    all (an unknown site or immunophenotype). Inputs that validation would refuse but
    that reach the engine anyway (stored before a check existed) give ``needs_review``
    with the reason, never a group.
    """
    if facts.site not in _SITES:
        raise ValueError(f"unknown site {facts.site!r}")
    if facts.immunophenotype not in _IMMUNOPHENOTYPES:
        raise ValueError(f"unknown immunophenotype {facts.immunophenotype!r}")

    cut = cut_offs_of(facts, protocol.time_points)
    time_point, time_reason = time_point_of(facts, protocol.time_points, cut)
    exclusions, warnings = _population(facts, protocol)

    plausibility = _frontline_plausibility(facts, protocol, cut)
    if plausibility is not None and plausibility.rule == ON_THERAPY_CONFIRMED_RULE:
        warnings.insert(0, plausibility)
    elif plausibility is not None:
        exclusions.insert(0, plausibility)
    site_review = _site_review(facts)
    if site_review is not None:
        exclusions.insert(0, site_review)

    def review(reasons: tuple[Reason, ...], tp: TimePoint | None = time_point) -> Decision:
        return Decision(
            protocol=protocol.slug,
            protocol_version=protocol.version,
            time_point=tp,
            site=facts.site,
            risk_group=None,
            status="needs_review",
            hsct_indicated=None,
            reasons=reasons,
            warnings=tuple(warnings),
            cut_offs=cut,
        )

    if exclusions:
        return review((time_reason, *exclusions))

    if time_point is None:
        # Both answers, from the same rules: what the clinician decides between.
        late = _classify(facts, protocol, "late")
        early = _classify(facts, protocol, "early")
        text = _undetermined_text(
            _after_very_early(facts, protocol.time_points, cut),
            cut,
            late=f"late → {late.summary()},",
            early=f"early → {early.summary()},",
        )
        text += " Give frontline_status (with frontline_therapy_end_date if completed) to decide."
        return review((replace(time_reason, text=text),))

    outcome = _classify(facts, protocol, time_point)
    if outcome.group is None:
        return review((time_reason, *outcome.reasons))
    return Decision(
        protocol=protocol.slug,
        protocol_version=protocol.version,
        time_point=time_point,
        site=facts.site,
        risk_group=outcome.group,
        status="assigned",
        hsct_indicated=outcome.hsct_indicated,
        reasons=(time_reason, *outcome.reasons),
        warnings=tuple(warnings),
        cut_offs=cut,
    )
