"""The facts a relapse is stratified on, and the cross-field checks they must pass.

Django-free on purpose: the API serializers, the course services (and through them
the admin) and the cohort benchmark all validate with the same function, so a relapse
that the API refuses is refused everywhere, with the same words. This module is also
the one home of the input vocabulary (Immunophenotype, Site, EmSite, TimePoint), which
the models, serializers and the protocol definitions import.

Site definitions follow the clinical notes (World J Hematol 2014 review; CIBMTR
response criteria):

* isolated bone marrow: >= 25 % blasts (M3), no extramedullary (EM) disease;
* combined: >= 5 % marrow blasts plus EM disease (CNS, testis, other);
* isolated EM: < 5 % marrow blasts and proven EM disease.

5 to < 25 % blasts (M2) without EM disease is not a BFM relapse category of its own, yet
such a relapse exists once it is confirmed, e.g. by MRD (Buchmann et al., Blood 2022,
Ponte di Legno): it is accepted as ``isolated_bm`` and the engine sends it to review (a
clinician assigns the group). Below 5 % without EM disease is no marrow relapse and is
refused. A site involving the marrow needs its blast count: without it the site claim
cannot be checked. An isolated EM relapse without one is accepted but not called
isolated: the engine sends it to review (Eckert et al., Blood 2007).

Eligibility facts (who a protocol is for: relapse number, prior HSCT, BCR::ABL1, age at
diagnosis, lineage) and the front-line status are facts too; the protocol file decides
what each value means (``population`` in the definition), this module only checks that
the values are well-formed and consistent with each other.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import EnumType, StrEnum
from typing import Any, Literal, Self


class _VocabularyType(EnumType):
    @property
    def choices(cls) -> list[tuple[str, str]]:
        return [(member.value, member.label) for member in cls]

    @property
    def values(cls) -> list[str]:
        return [member.value for member in cls]


class Vocabulary(StrEnum, metaclass=_VocabularyType):
    """A closed list of words, without Django (the engine and the definition loader
    use it). Each member is its value -- a plain ``str`` everywhere -- and carries the
    label people read; ``X.choices`` and ``X.values`` work as with Django's
    TextChoices, so models, serializers and the admin take a vocabulary as it is.
    Each vocabulary is defined once, here or (step kinds) in definitions.py."""

    label: str

    def __new__(cls, value: str, label: str) -> Self:
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        return member


class Immunophenotype(Vocabulary):
    B = "B", "B-cell precursor"
    T = "T", "T-lineage"
    # A value a clinician can enter; the built-in protocols exclude it (their
    # population is B or T lineage).
    MPAL = "MPAL", "Mixed phenotype"


class Site(Vocabulary):
    ISOLATED_BM = "isolated_bm", "Isolated bone marrow"
    COMBINED = "combined", "Combined"
    ISOLATED_EM = "isolated_em", "Isolated extramedullary"


class EmSite(Vocabulary):
    CNS = "cns", "CNS"
    TESTIS = "testis", "Testis"
    OTHER = "other", "Other extramedullary site"


class TimePoint(Vocabulary):
    VERY_EARLY = "very_early", "very early"
    EARLY = "early", "early"
    LATE = "late", "late"


IMMUNOPHENOTYPES: tuple[Immunophenotype, ...] = tuple(Immunophenotype)
SITES: tuple[Site, ...] = tuple(Site)
EM_SITES: tuple[EmSite, ...] = tuple(EmSite)
TIME_POINTS: tuple[TimePoint, ...] = tuple(TimePoint)
# Sites with marrow involvement / with extramedullary disease.
MARROW_SITES: frozenset[str] = frozenset({Site.ISOLATED_BM, Site.COMBINED})
EM_DISEASE_SITES: frozenset[str] = frozenset({Site.COMBINED, Site.ISOLATED_EM})

# Marrow blast thresholds (% of nucleated cells) that define the site categories:
# M3 marrow is >= 25 %, M1 (remission-level) marrow is < 5 %.
ISOLATED_BM_MIN_BLASTS = 25.0
COMBINED_MIN_BLASTS = 5.0
ISOLATED_EM_MAX_BLASTS = 5.0  # exclusive
# An isolated marrow relapse with M2 marrow (5 to < 25 %) is accepted, for review.
ISOLATED_BM_M2_MIN_BLASTS = 5.0
SITE_DEFINITION_SOURCE = "World J Hematol 2014 review, Table 2; CIBMTR response criteria"
M2_RELAPSE_SOURCE = "Buchmann et al., Blood 2022 (Ponte di Legno consensus)"
EM_MARROW_SOURCE = "Eckert et al., Blood 2007 (MRD by RQ-PCR in relapsed ALL)"
# The word a caller gives for an eligibility fact it does not know (relapse number,
# prior HSCT): stored and read as None, which the protocol's population turns into a
# review (``if_unknown``), never into "first relapse" or "no prior HSCT".
UNKNOWN = "unknown"

# Front-line status at the relapse. "unknown" is never read as "on therapy": a time
# point that depends on it is not guessed (the decision needs review).
FrontlineStatus = Literal["completed", "on_therapy", "unknown"]
FRONTLINE_STATUSES: tuple[FrontlineStatus, ...] = ("completed", "on_therapy", "unknown")
BcrAbl1 = Literal["positive", "negative", "unknown"]
BCR_ABL1_VALUES: tuple[BcrAbl1, ...] = ("positive", "negative", "unknown")
# Qualitative MRD results besides a quantified value (Ig/TCR RQ-PCR reports): below the
# detection limit, or detected below the quantitative range. A protocol's MRD rule says
# what each means for its threshold (``mrd_results`` in the definition).
MrdQualitative = Literal["negative", "positive_not_quantifiable"]
MRD_QUALITATIVE_RESULTS: tuple[MrdQualitative, ...] = ("negative", "positive_not_quantifiable")

DATE_FIELDS: tuple[str, ...] = (
    "initial_diagnosis_date",
    "frontline_therapy_end_date",
    "relapse_date",
)
FIELDS: tuple[str, ...] = (
    "initial_diagnosis_date",
    "frontline_therapy_end_date",
    "relapse_date",
    "immunophenotype",
    "site",
    "em_sites",
    "bm_blast_percent",
    "mrd_end_of_induction",
    "frontline_status",
    "relapse_number",
    "prior_hsct",
    "bcr_abl1",
    "age_at_diagnosis_months",
    "confirm_implausible",
    "implausible_reason",
)
# What an absent optional fact means. frontline_status has no fixed default: absent, it
# is derived from the end date (see RelapseFacts.__post_init__). The relapse number and
# prior HSCT have none either: absent (or "unknown") they are unknown (None), never
# "first relapse" or "no prior HSCT" -- both built-in protocols are for first relapses
# without a prior HSCT, so a guess there decides the population.
FACT_DEFAULTS: dict[str, Any] = {
    "bcr_abl1": "unknown",
    "age_at_diagnosis_months": None,
    "confirm_implausible": False,
    "implausible_reason": "",
}
REQUIRED_FIELDS: frozenset[str] = frozenset(
    {"initial_diagnosis_date", "relapse_date", "immunophenotype", "site"}
)


@dataclass(frozen=True, slots=True)
class RelapseFacts:
    """What the engine needs to know about one relapse. Build it from values that
    :func:`validate_facts` accepted (see :meth:`from_mapping`)."""

    initial_diagnosis_date: date
    # None: not ended, or not known; frontline_status says which.
    frontline_therapy_end_date: date | None
    relapse_date: date
    immunophenotype: Immunophenotype
    site: Site
    em_sites: tuple[EmSite, ...] = ()
    bm_blast_percent: float | None = None
    # Fraction (10^-3 = 0.001), RQ-PCR of Ig/TCR rearrangements at the end of induction.
    mrd_end_of_induction: float | None = None
    # completed (with the end date) / on_therapy (relapse during front-line therapy) /
    # unknown. None means "not given": derived from the end date in __post_init__ (an end
    # date means completed; none means unknown, never on_therapy).
    frontline_status: FrontlineStatus | None = None
    # None: not known (the population's if_unknown says what that means: review).
    relapse_number: int | None = None
    prior_hsct: bool | None = None
    bcr_abl1: BcrAbl1 = "unknown"
    # Completed months of age at the initial diagnosis; None: not known.
    age_at_diagnosis_months: int | None = None
    # "on_therapy" long after diagnosis is implausible; a clinician may confirm it.
    confirm_implausible: bool = False
    implausible_reason: str = ""

    def __post_init__(self) -> None:
        if self.frontline_status is None:
            derived = "completed" if self.frontline_therapy_end_date is not None else "unknown"
            object.__setattr__(self, "frontline_status", derived)
        # EM sites de-duplicated, in canonical order: equal facts compare (and snapshot)
        # equal whatever order the caller listed the sites in.
        if len(self.em_sites) > 1 or not isinstance(self.em_sites, tuple):
            ordered = tuple(sorted(set(self.em_sites), key=_em_site_order))
            object.__setattr__(self, "em_sites", ordered)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RelapseFacts:
        """Facts from validated values (dates as ``date`` or ISO strings)."""
        em = values.get("em_sites") or ()
        blasts = values.get("bm_blast_percent")
        mrd = values.get("mrd_end_of_induction")
        end = values.get("frontline_therapy_end_date")
        optional = {
            name: values[name] if values.get(name) is not None else default
            for name, default in FACT_DEFAULTS.items()
        }
        return cls(
            initial_diagnosis_date=_as_date(values["initial_diagnosis_date"]),
            frontline_therapy_end_date=_as_date(end) if end is not None else None,
            relapse_date=_as_date(values["relapse_date"]),
            immunophenotype=values["immunophenotype"],
            site=values["site"],
            em_sites=tuple(em),
            bm_blast_percent=float(blasts) if blasts is not None else None,
            mrd_end_of_induction=float(mrd) if mrd is not None else None,
            frontline_status=values.get("frontline_status"),
            relapse_number=known(values.get("relapse_number")),
            prior_hsct=known(values.get("prior_hsct")),
            **optional,
        )

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready snapshot (ISO dates), the inverse of :meth:`from_mapping`."""
        end = self.frontline_therapy_end_date
        return {
            "initial_diagnosis_date": self.initial_diagnosis_date.isoformat(),
            "frontline_therapy_end_date": end.isoformat() if end is not None else None,
            "relapse_date": self.relapse_date.isoformat(),
            "immunophenotype": self.immunophenotype,
            "site": self.site,
            "em_sites": list(self.em_sites),
            "bm_blast_percent": self.bm_blast_percent,
            "mrd_end_of_induction": self.mrd_end_of_induction,
            "frontline_status": self.frontline_status,
            "relapse_number": self.relapse_number,
            "prior_hsct": self.prior_hsct,
            "bcr_abl1": self.bcr_abl1,
            "age_at_diagnosis_months": self.age_at_diagnosis_months,
            "confirm_implausible": self.confirm_implausible,
            "implausible_reason": self.implausible_reason,
        }


def known(value: Any) -> Any:
    """None for the word "unknown" (and for None): how an unknown fact is held."""
    return None if value is None or value == UNKNOWN else value


def _em_site_order(site: str) -> tuple[int, str]:
    return (EM_SITES.index(site) if site in EM_SITES else len(EM_SITES), site)


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(value)


def _fmt(value: float) -> str:
    return f"{value:g}"


def _number(value: Any) -> float | None:
    """A finite real number, or None. Booleans are not numbers here (JSON ``true``
    must not become 1 % blasts)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    """An integer, or None (booleans and floats are not: ``2.5`` relapses is a typo)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def derive_age_at_diagnosis_months(birth_year: int, birth_month: int, diagnosis: date) -> int:
    """Completed months of age at the initial diagnosis, from the birth month and year.

    The birth day is not recorded (pseudonymity), so this is the age the child had
    certainly reached: the lower bound. Born in March 2020 and diagnosed on 2021-03-10,
    the child is 11 or 12 months old and counts as 11 — at the infant cut-off (< 12
    months) a doubtful case goes to review instead of being stratified as a non-infant.
    On the last day of a month every birthday of the birth month has passed (calendar
    months clamp to the month's end, as in the time-point arithmetic).
    """
    if not 1 <= birth_month <= 12:
        raise ValueError(f"birth_month must be 1-12 (got {birth_month})")
    months = (diagnosis.year - birth_year) * 12 + (diagnosis.month - birth_month)
    if months < 0:
        raise ValueError(
            f"the diagnosis ({diagnosis.isoformat()}) is before the birth month "
            f"({birth_year}-{birth_month:02d})"
        )
    if months == 0:
        return 0
    last_day = calendar.monthrange(diagnosis.year, diagnosis.month)[1]
    return months if diagnosis.day == last_day else months - 1


def validate_facts(values: Mapping[str, Any], today: date) -> dict[str, list[str]]:
    """Check one relapse's facts, alone and against each other.

    ``values`` holds the fields of :class:`RelapseFacts` as parsed by the caller (dates
    as ``date`` or ISO strings, numbers as numbers); a missing optional field counts as
    null. ``today`` is the caller's local date, read once (no clock in here).

    Returns ``{field: [message, ...]}`` — empty when the facts are consistent. Every
    problem is reported at once, each under the field it concerns; a check that needs
    a field which is itself invalid is skipped rather than reported twice.
    """
    errors: dict[str, list[str]] = {}

    def add(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    for field in REQUIRED_FIELDS:
        if values.get(field) is None:
            add(field, "is required")

    # --- dates ------------------------------------------------------------------
    dates: dict[str, date] = {}
    for field in DATE_FIELDS:
        raw = values.get(field)
        if raw is None or field in errors:
            continue
        try:
            dates[field] = _as_date(raw)
        except (TypeError, ValueError):
            add(field, f"must be a date in the form YYYY-MM-DD (got {raw!r})")
            continue
        if dates[field] > today:
            add(field, f"must not be in the future (today is {today.isoformat()})")

    diagnosis = dates.get("initial_diagnosis_date")
    relapse = dates.get("relapse_date")
    end = dates.get("frontline_therapy_end_date")
    if diagnosis and relapse and relapse < diagnosis:
        add(
            "relapse_date",
            f"must not be before initial_diagnosis_date ({diagnosis.isoformat()})",
        )
    if diagnosis and end and end < diagnosis:
        add(
            "frontline_therapy_end_date",
            f"must not be before initial_diagnosis_date ({diagnosis.isoformat()})",
        )
    if relapse and end and end > relapse:
        add(
            "frontline_therapy_end_date",
            f"must not be after relapse_date ({relapse.isoformat()}); leave it empty "
            "for a relapse during front-line therapy (frontline_status on_therapy)",
        )

    # --- front-line status ---------------------------------------------------------
    # Absent: derived from the end date (RelapseFacts). Given: it must agree with it.
    status = values.get("frontline_status")
    end_given = values.get("frontline_therapy_end_date") is not None
    if status is not None:
        if status not in FRONTLINE_STATUSES:
            add("frontline_status", f"{status!r} is not one of {', '.join(FRONTLINE_STATUSES)}")
        elif status == "completed" and not end_given:
            add(
                "frontline_therapy_end_date",
                "is required when frontline_status is completed",
            )
        elif status != "completed" and end_given:
            add(
                "frontline_status",
                f"is {status} but frontline_therapy_end_date is given: an end date means "
                "completed; leave the end date empty otherwise",
            )

    # --- categories --------------------------------------------------------------
    immunophenotype = values.get("immunophenotype")
    if immunophenotype is not None and immunophenotype not in IMMUNOPHENOTYPES:
        add("immunophenotype", f"{immunophenotype!r} is not one of {', '.join(IMMUNOPHENOTYPES)}")

    site = values.get("site")
    if site is not None and site not in SITES:
        add("site", f"{site!r} is not one of {', '.join(SITES)}")
        site = None  # consistency checks below need a known site

    em_raw = values.get("em_sites")
    em_sites: list[str] | None = []
    if em_raw is not None:
        if isinstance(em_raw, str) or not isinstance(em_raw, list | tuple):
            add("em_sites", f"must be a list of extramedullary sites ({', '.join(EM_SITES)})")
            em_sites = None
        else:
            em_sites = list(em_raw)
            unknown = [s for s in em_sites if s not in EM_SITES]
            for item in unknown:
                add("em_sites", f"{item!r} is not one of {', '.join(EM_SITES)}")
            repeated = sorted({s for s in em_sites if em_sites.count(s) > 1 and s in EM_SITES})
            for item in repeated:
                add("em_sites", f"lists {item!r} more than once")
            if unknown:
                em_sites = None
    if site is not None and em_sites is not None:
        if site == "isolated_bm" and em_sites:
            add(
                "em_sites",
                "must be empty for site isolated_bm (no extramedullary disease); "
                f"got {', '.join(em_sites)}",
            )
        elif site in EM_DISEASE_SITES and not em_sites:
            add(
                "em_sites",
                f"must name at least one extramedullary site ({', '.join(EM_SITES)}) "
                f"for site {site}",
            )

    # --- numbers -------------------------------------------------------------------
    blasts_raw = values.get("bm_blast_percent")
    if blasts_raw is None and site in MARROW_SITES:
        # Without the count the site cannot be checked (>= 25 % defines isolated_bm,
        # >= 5 % combined), and the site decides the group.
        minimum = ISOLATED_BM_MIN_BLASTS if site == "isolated_bm" else COMBINED_MIN_BLASTS
        add(
            "bm_blast_percent",
            f"is required for site {site} (marrow involvement: at least {_fmt(minimum)} % "
            "blasts defines the site)",
        )
    if blasts_raw is not None:
        blasts = _number(blasts_raw)
        if blasts is None:
            add("bm_blast_percent", f"must be a number between 0 and 100 (got {blasts_raw!r})")
        elif not 0 <= blasts <= 100:
            add("bm_blast_percent", f"must be between 0 and 100 (got {_fmt(blasts)})")
        elif site == "isolated_bm" and blasts < ISOLATED_BM_M2_MIN_BLASTS:
            # 5 to < 25 % (M2) is accepted and reviewed (engine); below 5 % the marrow
            # is M1, remission level: no marrow relapse.
            add(
                "bm_blast_percent",
                f"must be at least {_fmt(ISOLATED_BM_M2_MIN_BLASTS)} for site isolated_bm; "
                f"got {_fmt(blasts)} — below 5 % blasts (M1 marrow) without "
                "extramedullary disease is not a marrow relapse",
            )
        elif site == "combined" and blasts < COMBINED_MIN_BLASTS:
            add(
                "bm_blast_percent",
                f"must be at least {_fmt(COMBINED_MIN_BLASTS)} for site combined; "
                f"got {_fmt(blasts)} — below 5 % with extramedullary disease is isolated_em",
            )
        elif site == "isolated_em" and blasts >= ISOLATED_EM_MAX_BLASTS:
            add(
                "bm_blast_percent",
                f"must be below {_fmt(ISOLATED_EM_MAX_BLASTS)} for site isolated_em; "
                f"got {_fmt(blasts)} — 5 % or more with extramedullary disease is combined",
            )

    mrd_raw = values.get("mrd_end_of_induction")
    if mrd_raw is not None:
        mrd = _number(mrd_raw)
        if mrd is None:
            add(
                "mrd_end_of_induction",
                f"must be a number between 0 and 1 (got {mrd_raw!r})",
            )
        elif not 0 <= mrd <= 1:
            add(
                "mrd_end_of_induction",
                f"must be a fraction between 0 and 1 (got {_fmt(mrd)}; 10^-3 is 0.001)",
            )

    # --- eligibility facts (what they mean is the protocol's population) -------------
    # Relapse number and prior HSCT may be unknown (None or the word): the population
    # decides what that means. Whether they had to be given is the caller's check (it
    # knows what the records here say; see courses.services.patients).
    number_raw = values.get("relapse_number")
    if number_raw is not None and number_raw != UNKNOWN:
        number = _integer(number_raw)
        if number is None or number < 1:
            add(
                "relapse_number",
                f"must be an integer of at least 1 (got {number_raw!r}), or unknown",
            )
    prior = values.get("prior_hsct")
    if prior is not None and prior != UNKNOWN and not isinstance(prior, bool):
        add("prior_hsct", f"must be true or false (got {prior!r}), or unknown")
    flag = values.get("confirm_implausible")
    if flag is not None and not isinstance(flag, bool):
        add("confirm_implausible", f"must be true or false (got {flag!r})")
    bcr_abl1 = values.get("bcr_abl1")
    if bcr_abl1 is not None and bcr_abl1 not in BCR_ABL1_VALUES:
        add("bcr_abl1", f"{bcr_abl1!r} is not one of {', '.join(BCR_ABL1_VALUES)}")
    age_raw = values.get("age_at_diagnosis_months")
    if age_raw is not None:
        age = _integer(age_raw)
        if age is None or age < 0:
            add(
                "age_at_diagnosis_months",
                f"must be a whole number of months, 0 or more (got {age_raw!r})",
            )
    reason = values.get("implausible_reason")
    if reason is not None and not isinstance(reason, str):
        add("implausible_reason", "must be text")
    elif values.get("confirm_implausible") is True and not (reason or "").strip():
        add(
            "implausible_reason",
            "is required when confirm_implausible is true: say why the implausible value is right",
        )

    return errors
