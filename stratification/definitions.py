"""Protocol definitions: versioned data files, validated when loaded.

A definition file (YAML, one per protocol version, named ``<slug>.yaml``) carries the
population the protocol is for (eligibility criteria, and what an unknown value means),
the time-point thresholds, the ordered stratification rules with their conditions *as
data* (a rule may send a case to review with the readings a clinician weighs), the HSCT
indication per group with its MRD rule, the schedule templates and the alert
thresholds. A centre adds its own protocol by dropping a file into one of the configured
directories — no code changes.

Loading is two passes:

1. structure, against ``protocol_schema.json`` (JSON Schema 2020-12);
2. meaning, which a schema cannot express: a rule's group exists, every group has an HSCT
   indication and exactly one schedule template, ids are unique, source keys resolve,
   schedule anchors point backwards, no rule is shadowed by earlier ones, the slug
   matches the file name, the population declares every eligibility fact once with
   values of the fact's type, and rules only speak of lineages inside the population.

The first problem found stops loading with a :class:`ProtocolDefinitionError` that names
the file and the field (``rules[2].group``), so a broken file stops start-up with a
message an author can act on.

Django-free: the engine, the benchmark and the docs renderer use it without settings;
the Django side (``stratification.selectors``) passes the directories in.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import jsonschema
import yaml

from stratification.facts import (
    BCR_ABL1_VALUES,
    EM_DISEASE_SITES,
    EM_SITES,
    IMMUNOPHENOTYPES,
    MRD_QUALITATIVE_RESULTS,
    SITES,
    TIME_POINTS,
    Vocabulary,
)

BUILTIN_DIR = Path(__file__).resolve().parent / "protocols"
SCHEMA_PATH = Path(__file__).resolve().parent / "protocol_schema.json"
DEFINITION_SUFFIXES = (".yaml", ".yml")

# Reason ids the engine emits itself (time point, front-line plausibility, site check);
# reserved in definitions.
TIME_POINT_RULE_PREFIX = "time_point."
RESERVED_RULE_PREFIXES: tuple[str, ...] = (TIME_POINT_RULE_PREFIX, "frontline_status.", "site.")

Confidence = Literal["stated", "recalled", "inferred"]
CONFIDENCES: tuple[Confidence, ...] = ("stated", "recalled", "inferred")
HsctRule = bool | Literal["mrd_threshold"]


class StepKind(Vocabulary):
    """What a planned step is. Defined here, where both the protocol definitions and
    the courses app (which may import stratification, never the reverse) read it."""

    BLOCK = "block", "Chemotherapy block"
    RESPONSE_ASSESSMENT = "response_assessment", "Response assessment"
    MRD = "mrd", "MRD"
    HSCT_REFERRAL = "hsct_referral", "HSCT referral"
    HSCT = "hsct", "HSCT"
    IRRADIATION = "irradiation", "Irradiation"
    MAINTENANCE_START = "maintenance_start", "Start of maintenance"
    END_OF_THERAPY = "end_of_therapy", "End of therapy"


class MrdTimePoint(Vocabulary):
    """When an MRD sample was taken. A protocol file lists the ones its courses record
    (``mrd_time_points``): a closed list, so a result can always find its planned step
    ("pre-HSCT" typed by hand once missed the ``pre_hsct`` step)."""

    AT_RELAPSE = "at_relapse", "at relapse"
    END_OF_INDUCTION = "end_of_induction", "end of induction"
    PRE_HSCT = "pre_hsct", "before HSCT"
    POST_HSCT = "post_hsct", "after HSCT"
    FOLLOW_UP = "follow_up", "during follow-up"


MRD_TIME_POINT_WORDS: dict[str, str] = {point.value: point.label for point in MrdTimePoint}
# The eligibility facts a population must declare, each once. Facts with an "unknown"
# value (None, or the word) need the file to say what unknown means (warn or review).
POPULATION_FACTS: tuple[str, ...] = (
    "relapse_number",
    "prior_hsct",
    "bcr_abl1",
    "age_at_diagnosis_months",
    "immunophenotype",
)
# The relapse number and prior HSCT are unknown when the records here do not say and
# the team answered "unknown" (courses.services.patients): never read as first / none.
POPULATION_FACTS_WITH_UNKNOWN: frozenset[str] = frozenset(
    {"relapse_number", "prior_hsct", "bcr_abl1", "age_at_diagnosis_months"}
)
_POPULATION_VALUES: dict[str, tuple[Any, ...]] = {
    "prior_hsct": (True, False),
    "bcr_abl1": tuple(v for v in BCR_ABL1_VALUES if v != "unknown"),
    "immunophenotype": IMMUNOPHENOTYPES,
}
_POPULATION_RANGE_FACTS: frozenset[str] = frozenset({"relapse_number", "age_at_diagnosis_months"})
UnknownAction = Literal["warn", "review"]
# What a qualitative MRD result means for an MRD threshold: below it when the assay's
# sensitivity is at or below the threshold (else undecided), or always undecided.
MrdTreatment = Literal["below_threshold_if_sensitive", "undecided"]
ALERT_THRESHOLD_NAMES: tuple[str, ...] = (
    "hsct_referral_missing_days",
    "hsct_delayed_days",
    "mrd_before_hsct_window_days",
    "mrd_transplant_planned_within_days",
    "course_stalled_days",
    "hsct_decision_pending_days",
    "mrd_decision_missing_days",
    "non_response_decision_days",
    "mrd_high_before_hsct_threshold",
    "donor_search_stalled_days",
    "cumulative_delay_days",
    "course_stalled_maintenance_days",
    "course_stalled_post_transplant_days",
    "hsct_proposal_unconfirmed_days",
    "stratification_unconfirmed_days",
)


# --- errors ------------------------------------------------------------------------


def display_path(path: str | Path) -> str:
    """The path relative to the working directory when it lies below it (the form an
    operator typed), else absolute."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


class ProtocolDefinitionError(Exception):
    """A definition file that cannot be used, with the field that makes it so.

    ``str()`` reads ``stratification/protocols/x.yaml: rules[2].group: 'Z' is not one
    of the groups (A, B)``; ``field_path`` is empty for whole-file problems (YAML syntax,
    a missing directory).
    """

    def __init__(self, path: str | Path, field_path: str, message: str) -> None:
        self.path = Path(path)
        self.field_path = field_path
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = display_path(self.path)
        if self.field_path:
            return f"{where}: {self.field_path}: {self.message}"
        return f"{where}: {self.message}"


# --- the loaded, immutable objects ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    key: str
    citation: str
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Cited:
    """An entry a decision can quote as a reason or a warning: its id, its words, where
    they come from (source keys and the resolved citation) and how sure that source is.
    Every such entry of a definition file derives from this one shape."""

    id: str
    text: str
    sources: tuple[str, ...]
    citation: str
    confidence: Confidence
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class SourcedLimit(Cited):
    """A number with its basis: a local default (``local_default``) or a sourced one."""

    value: int
    local_default: bool


@dataclass(frozen=True, slots=True)
class TimePointThresholds:
    """very early: relapse < diagnosis + ``very_early_months`` calendar months;
    late: front-line therapy completed and relapse >= end + ``late_months`` calendar
    months; "on therapy" at a relapse more than ``on_therapy_plausible.value`` months
    after diagnosis is implausible (refused unless confirmed)."""

    very_early_months: int
    late_months: int
    sources: tuple[str, ...]
    citation: str
    confidence: Confidence
    on_therapy_plausible: SourcedLimit
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownPolicy(Cited):
    """What the protocol does when an eligibility fact is not known: stratify with a
    warning (``warn``) or send the case to review (``review``)."""

    action: UnknownAction
    local_default: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class PopulationCriterion(Cited):
    """One eligibility criterion: the fact's admissible values (``allowed``) or range
    (``minimum`` / ``maximum``, inclusive). ``id`` and ``text`` name the exclusion when a
    case is outside."""

    fact: str
    allowed: frozenset[Any] | None = None
    minimum: int | None = None
    maximum: int | None = None
    if_unknown: UnknownPolicy | None = None

    @staticmethod
    def is_unknown(value: Any) -> bool:
        return value is None or value == "unknown"

    def admits(self, value: Any) -> bool:
        """Whether a known value is inside the population."""
        if self.allowed is not None:
            return value in self.allowed
        return (self.minimum is None or value >= self.minimum) and (
            self.maximum is None or value <= self.maximum
        )

    def describe(self) -> str:
        """The admissible values in words, for the docs."""
        if self.allowed is not None:
            order = {"immunophenotype": IMMUNOPHENOTYPES, "bcr_abl1": BCR_ABL1_VALUES}
            values = [v for v in order.get(self.fact, (True, False)) if v in self.allowed]
            words = " or ".join(str(v).lower() if isinstance(v, bool) else v for v in values)
            return f"{self.fact}: {words}"
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum} <= {self.fact} <= {self.maximum}"
        if self.minimum is not None:
            return f"{self.fact} >= {self.minimum}"
        return f"{self.fact} <= {self.maximum}"


@dataclass(frozen=True, slots=True)
class Population:
    """Who the protocol is for. A case outside it gets no group (needs review)."""

    description: str
    criteria: tuple[PopulationCriterion, ...]

    @property
    def immunophenotypes(self) -> tuple[str, ...]:
        """The lineages inside the population, in canonical order."""
        for criterion in self.criteria:
            if criterion.fact == "immunophenotype" and criterion.allowed is not None:
                return tuple(p for p in IMMUNOPHENOTYPES if p in criterion.allowed)
        return IMMUNOPHENOTYPES


@dataclass(frozen=True, slots=True)
class Group:
    id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Conditions:
    """What a rule matches: every given fact must be one of its listed values; a fact
    that is not given (None) matches anything."""

    time_points: frozenset[str] | None = None
    sites: frozenset[str] | None = None
    immunophenotypes: frozenset[str] | None = None
    em_sites_any: frozenset[str] | None = None

    def matches(
        self, time_point: str, site: str, immunophenotype: str, em_sites: Iterable[str]
    ) -> bool:
        return (
            (self.time_points is None or time_point in self.time_points)
            and (self.sites is None or site in self.sites)
            and (self.immunophenotypes is None or immunophenotype in self.immunophenotypes)
            and (self.em_sites_any is None or not self.em_sites_any.isdisjoint(em_sites))
        )

    def describe(self) -> str:
        """Human form for the docs, in the canonical order of the values."""
        parts = []
        for label, values, order in (
            ("time point", self.time_points, TIME_POINTS),
            ("site", self.sites, SITES),
            ("immunophenotype", self.immunophenotypes, IMMUNOPHENOTYPES),
            ("EM site any of", self.em_sites_any, EM_SITES),
        ):
            if values is not None:
                parts.append(f"{label}: {' or '.join(v for v in order if v in values)}")
        return "; ".join(parts) or "any relapse"


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading(Cited):
    """One way the sources read a case that a rule sends to review."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule(Cited):
    # None: the rule sends the case to review (the sources disagree); ``readings`` then
    # holds each reading for the clinician.
    group: str | None
    when: Conditions
    readings: tuple[Reading, ...] = ()

    @property
    def local_default(self) -> bool:
        # [R] and [I] in the clinical notes: a centre must confirm before relying on it.
        return self.confidence != "stated"

    @property
    def needs_review(self) -> bool:
        return self.group is None


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackRule(Cited):
    """What the decision says when no rule matched."""


@dataclass(frozen=True, slots=True)
class MrdAssay:
    """The MRD method the threshold was defined with (documentation and texts)."""

    method: str
    sensitivity: float
    sources: tuple[str, ...]
    citation: str
    confidence: Confidence


@dataclass(frozen=True, slots=True, kw_only=True)
class MrdResultRule(Cited):
    """What a qualitative MRD result (negative / positive, not quantifiable) means for
    the threshold."""

    result: str
    treatment: MrdTreatment
    local_default: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockAnchor(Cited):
    """A day counted from a block the course recorded: the start of the first block of
    ``block_type``, or of the ``block_number``-th block by start date, plus
    ``offset_days``. The end of induction (from then on CR2 is judged) and the window
    a deciding MRD sample must fall in are such days: they follow the blocks as given,
    not the plan, so a late F2 moves them."""

    block_type: str | None = None
    block_number: int | None = None
    offset_days: int = 0
    local_default: bool = False

    @property
    def block(self) -> str:
        """The block it counts from: "block F2", "the 2nd block"."""
        if self.block_type is not None:
            return f"block {self.block_type}"
        n = self.block_number or 0
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(n, "th")
        return f"the {n}{suffix} block"

    @property
    def words(self) -> str:
        """E.g. "the start of block F2 + 5 days"."""
        plus = f" + {self.offset_days} day{'' if self.offset_days == 1 else 's'}"
        return f"the start of {self.block}{plus if self.offset_days else ''}"

    def day(self, blocks: Sequence[tuple[str, date]]) -> date | None:
        """The day, from the course's valid blocks as (block type, start date); None
        while the block it counts from is not recorded."""
        starts = sorted(start for kind, start in blocks if self.block_type in (None, kind))
        index = 0 if self.block_type is not None else (self.block_number or 1) - 1
        if len(starts) <= index:
            return None
        return starts[index] + timedelta(days=self.offset_days)


@dataclass(frozen=True, slots=True, kw_only=True)
class HsctIndication(Cited):
    group: str
    # True / False, or "mrd_threshold": indicated when MRD at ``mrd_time_point`` is at or
    # above ``mrd_threshold``, not indicated below it, undecided while unknown.
    indicated: HsctRule
    mrd_time_point: str | None = None
    mrd_threshold: float | None = None
    mrd_assay: MrdAssay | None = None
    # Keyed by qualitative result (negative, positive_not_quantifiable).
    mrd_results: Mapping[str, MrdResultRule] = field(default_factory=lambda: MappingProxyType({}))
    # Which sample at mrd_time_point decides: one sampled on or after this day
    # (ALL-REZ BFM 2002 S2: after F2); an earlier one is kept and does not decide.
    deciding_window: BlockAnchor | None = None

    @property
    def possibly_indicated(self) -> bool:
        return self.indicated is not False


@dataclass(frozen=True, slots=True)
class Step:
    """One expected event of a course. Its planned date is ``offset_days`` after the
    date of its anchor step (by default the previous step that applies; the first
    step's offset counts from the start of the course)."""

    id: str
    kind: StepKind
    label: str
    offset_days: int
    grace_days: int
    local_default: bool
    anchor: str | None = None  # resolved: None only for the first step
    block_type: str | None = None
    duration_days: int | None = None
    mrd_time_point: str | None = None
    # None: always; True/False: only once the final HSCT indication is that value.
    when_hsct: bool | None = None
    note: str = ""
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ScheduleTemplate:
    id: str
    name: str
    groups: tuple[str, ...]
    steps: tuple[Step, ...]

    def steps_for(self, hsct: bool | None) -> tuple[Step, ...]:
        """The steps that apply for a final HSCT indication (``None``: not known yet —
        only the steps common to both branches)."""
        return tuple(s for s in self.steps if s.when_hsct is None or s.when_hsct == hsct)

    def planned_days(self) -> dict[str, int]:
        """Day (0 = course start) each step falls on when everything is on time.
        Branch steps only anchor within their branch, so every step has one day."""
        days: dict[str, int] = {}
        for step in self.steps:
            base = days[step.anchor] if step.anchor is not None else 0
            days[step.id] = base + step.offset_days
        return days


@dataclass(frozen=True, slots=True)
class AlertThreshold:
    name: str
    # Days, or a fraction of cells for the names ending in _threshold (MRD).
    value: int | float
    local_default: bool
    note: str = ""
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class ProtocolDefinition:
    slug: str
    version: str
    title: str
    description: str
    path: Path
    sources: Mapping[str, Source]
    population: Population
    time_points: TimePointThresholds
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]
    fallback: FallbackRule
    hsct_indication: Mapping[str, HsctIndication]
    schedule_templates: tuple[ScheduleTemplate, ...]
    alert_thresholds: Mapping[str, AlertThreshold]
    # The MRD time points a course on this protocol records results at (closed list).
    mrd_time_points: tuple[MrdTimePoint, ...] = ()
    # The blocks a course of this protocol may record (the file's block_types, or the
    # templates' own block types when the file declares none).
    block_types: tuple[str, ...] = ()
    # From when response is judged (CR2 no earlier than the end of induction,
    # Buchmann et al., Blood 2022); None: the file does not say.
    end_of_induction: BlockAnchor | None = None
    # Derived lookups, filled in __post_init__.
    group_ids: frozenset[str] = field(init=False)
    _schedule_by_group: Mapping[str, ScheduleTemplate] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "group_ids", frozenset(g.id for g in self.groups))
        by_group = {g: t for t in self.schedule_templates for g in t.groups}
        object.__setattr__(self, "_schedule_by_group", MappingProxyType(by_group))

    def schedule_for(self, group: str) -> ScheduleTemplate:
        return self._schedule_by_group[group]

    def alert_days(self, name: str) -> int:
        return self.alert_thresholds[name].value

    def citation(self, keys: Iterable[str]) -> str:
        return "; ".join(self.sources[k].citation for k in keys)

    @property
    def rule_ids(self) -> frozenset[str]:
        return frozenset(r.id for r in self.rules)


@dataclass(frozen=True, eq=False)
class ProtocolRegistry:
    """The loaded definitions by slug, in load order."""

    definitions: Mapping[str, ProtocolDefinition]

    def get(self, slug: str) -> ProtocolDefinition:
        return self.definitions[slug]

    def __contains__(self, slug: object) -> bool:
        return slug in self.definitions

    def __iter__(self) -> Iterator[ProtocolDefinition]:
        return iter(self.definitions.values())

    def __len__(self) -> int:
        return len(self.definitions)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(self.definitions)


# --- YAML ----------------------------------------------------------------------------


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys: PyYAML silently keeps the last one, so a
    second ``S2:`` entry would quietly replace the first."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProtocolDefinitionError(path, "", f"cannot be read ({exc.strerror})") from exc
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ProtocolDefinitionError(path, "", f"{where}invalid YAML: {problem}") from exc


# --- pass 1: structure ---------------------------------------------------------------


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def format_path(parts: Iterable[str | int]) -> str:
    """``["rules", 2, "group"]`` -> ``rules[2].group``."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "array": "a list",
    "object": "a mapping",
}


_FORBIDDEN_HERE = {
    "group": "must not be given on a rule with needs_review: true (it proposes no group)",
    "readings": "are only for a rule with needs_review: true",
}


def _schema_problem(error: jsonschema.ValidationError) -> tuple[str, str]:
    """(field path, message) for the most relevant schema error, in the author's terms."""
    parts: list[str | int] = list(error.absolute_path)
    instance = error.instance
    kind = error.validator
    if kind == "required" and isinstance(instance, dict):
        missing = next(p for p in error.validator_value if p not in instance)
        return format_path([*parts, missing]), "is required"
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        extra = next(k for k in instance if k not in allowed)
        return (
            format_path([*parts, extra]),
            f"is not a known field (allowed here: {', '.join(allowed)})",
        )
    if kind == "type":
        wanted = error.validator_value
        wanted_words = (
            " or ".join(_TYPE_WORDS.get(t, t) for t in wanted)
            if isinstance(wanted, list)
            else _TYPE_WORDS.get(wanted, wanted)
        )
        return format_path(parts), f"must be {wanted_words} (got {instance!r})"
    if kind == "enum":
        choices = ", ".join(json.dumps(v) for v in error.validator_value)
        return format_path(parts), f"{instance!r} is not one of {choices}"
    if kind == "const":
        return format_path(parts), f"must be {json.dumps(error.validator_value)}"
    if kind == "pattern":
        return (
            format_path(parts),
            f"{instance!r} does not match the pattern {error.validator_value}",
        )
    if kind == "not" and set(error.validator_value) == {"required"}:
        # A field forbidden in this branch of an if/then/else (e.g. a group on a rule that
        # needs review).
        name = error.validator_value["required"][0]
        return format_path([*parts, name]), _FORBIDDEN_HERE.get(name, "is not allowed here")
    if kind == "minItems":
        return format_path(parts), f"must have at least {error.validator_value} item(s)"
    if kind == "uniqueItems":
        return format_path(parts), "must not list the same value twice"
    return format_path(parts), error.message


def _check_structure(path: Path, data: Any) -> None:
    error = jsonschema.exceptions.best_match(_validator().iter_errors(data))
    if error is not None:
        field_path, message = _schema_problem(error)
        raise ProtocolDefinitionError(path, field_path, message)


# --- pass 2: meaning -----------------------------------------------------------------


def _all_relapses(phenotypes: Sequence[str]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Every distinguishable valid relapse of the population's lineages as (time point,
    site, immunophenotype, EM sites): 3 time points x 2 lineages (B, T) x 15 site/EM
    combinations = 90 cases, few enough to enumerate when checking that no rule is
    shadowed. Cases outside the population never reach the rules."""
    em_subsets = [
        combo for n in range(1, len(EM_SITES) + 1) for combo in itertools.combinations(EM_SITES, n)
    ]
    cases = []
    for tp, site, phenotype in itertools.product(TIME_POINTS, SITES, phenotypes):
        for em in em_subsets if site in EM_DISEASE_SITES else [()]:
            cases.append((tp, site, phenotype, em))
    return cases


def _conditions(when: Mapping[str, Sequence[str]]) -> Conditions:
    def values(key: str) -> frozenset[str] | None:
        return frozenset(when[key]) if key in when else None

    return Conditions(
        time_points=values("time_point"),
        sites=values("site"),
        immunophenotypes=values("immunophenotype"),
        em_sites_any=values("em_sites_any"),
    )


class _Semantics:
    """Cross-reference checks on schema-valid data; raises on the first problem."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, parts: Sequence[str | int], message: str) -> None:
        raise ProtocolDefinitionError(self.path, format_path(parts), message)

    def run(self) -> None:
        data = self.data
        if data["slug"] != self.path.stem:
            self.fail(
                ["slug"],
                f"{data['slug']!r} must match the file name stem {self.path.stem!r}",
            )
        self.check_sources()
        group_ids = self.check_groups()
        self.check_ids()
        phenotypes = self.check_population()
        self.check_rules(group_ids, phenotypes)
        self.check_hsct(group_ids)
        self.check_schedules(group_ids)
        self.check_mrd_time_points()

    def _cited(self) -> Iterator[tuple[list[str | int], dict[str, Any]]]:
        """(path, entry) of every entry that names a reason in a decision: it has an id,
        a text, sources and a confidence."""
        data = self.data
        for c, criterion in enumerate(data["population"]["criteria"]):
            yield ["population", "criteria", c], criterion
            if "if_unknown" in criterion:
                yield ["population", "criteria", c, "if_unknown"], criterion["if_unknown"]
        for i, rule in enumerate(data["rules"]):
            yield ["rules", i], rule
            for r, reading in enumerate(rule.get("readings", [])):
                yield ["rules", i, "readings", r], reading
        yield ["fallback"], data["fallback"]
        for group, entry in data["hsct_indication"].items():
            yield ["hsct_indication", group], entry
            for result, rule in entry.get("mrd_results", {}).items():
                yield ["hsct_indication", group, "mrd_results", result], rule
            if "deciding_window" in entry:
                yield ["hsct_indication", group, "deciding_window"], entry["deciding_window"]
        if "end_of_induction" in data:
            yield ["end_of_induction"], data["end_of_induction"]

    def check_sources(self) -> None:
        known = self.data["sources"]

        def check(keys: Sequence[str], parts: list[str | int]) -> None:
            for i, key in enumerate(keys):
                if key not in known:
                    self.fail(
                        [*parts, i],
                        f"{key!r} is not one of the sources ({', '.join(known)})",
                    )

        time_points = self.data["time_points"]
        check(time_points["sources"], ["time_points", "sources"])
        check(
            time_points["on_therapy_plausible_months"].get("sources", []),
            ["time_points", "on_therapy_plausible_months", "sources"],
        )
        for parts, entry in self._cited():
            check(entry["sources"], [*parts, "sources"])
        for group, entry in self.data["hsct_indication"].items():
            if "mrd_assay" in entry:
                parts = ["hsct_indication", group, "mrd_assay", "sources"]
                check(entry["mrd_assay"]["sources"], parts)
        for name, entry in self.data["alert_thresholds"].items():
            check(entry.get("sources", []), ["alert_thresholds", name, "sources"])
        for t, template in enumerate(self.data["schedule_templates"]):
            for s, step in enumerate(template["steps"]):
                check(step.get("sources", []), ["schedule_templates", t, "steps", s, "sources"])

    def check_groups(self) -> list[str]:
        ids: list[str] = []
        for i, group in enumerate(self.data["groups"]):
            if group["id"] in ids:
                self.fail(["groups", i, "id"], f"{group['id']!r} is listed twice")
            ids.append(group["id"])
        return ids

    def check_ids(self) -> None:
        """Population, rule, reading, fallback and HSCT rule ids name a reason or a
        warning in a decision: they must be unique across the file, and not collide with
        the engine's time-point ids."""
        seen: dict[str, str] = {}
        entries = [([*parts, "id"], entry["id"]) for parts, entry in self._cited()]
        for parts, rule_id in entries:
            reserved = next((p for p in RESERVED_RULE_PREFIXES if rule_id.startswith(p)), None)
            if reserved is not None:
                self.fail(parts, f"{rule_id!r}: ids starting with {reserved!r} are reserved")
            if rule_id in seen:
                self.fail(parts, f"{rule_id!r} is already used by {seen[rule_id]}")
            seen[rule_id] = format_path(parts[:-1])

    def check_population(self) -> tuple[str, ...]:
        """Every eligibility fact declared once, with values of its type; returns the
        lineages inside the population."""
        criteria = self.data["population"]["criteria"]
        declared: dict[str, int] = {}
        for c, criterion in enumerate(criteria):
            parts: list[str | int] = ["population", "criteria", c]
            fact = criterion["fact"]
            if fact in declared:
                self.fail(
                    [*parts, "fact"],
                    f"{fact!r} is already declared by population.criteria[{declared[fact]}]",
                )
            declared[fact] = c
            allowed = criterion["allowed"]
            if fact in _POPULATION_RANGE_FACTS:
                if not isinstance(allowed, dict):
                    self.fail(
                        [*parts, "allowed"], f"must be a range {{min, max}} for {fact} (a number)"
                    )
                if allowed.get("min", 0) > allowed.get("max", allowed.get("min", 0)):
                    self.fail([*parts, "allowed"], "min is above max: nobody is inside")
            elif not isinstance(allowed, list):
                self.fail([*parts, "allowed"], f"must be a list of values of {fact}")
            else:
                choices = _POPULATION_VALUES[fact]
                for v, value in enumerate(allowed):
                    if value not in choices or isinstance(value, bool) != isinstance(
                        choices[0], bool
                    ):
                        words = ", ".join(json.dumps(x) for x in choices)
                        self.fail(
                            [*parts, "allowed", v],
                            f"{value!r} is not a value of {fact} ({words})",
                        )
            if fact in POPULATION_FACTS_WITH_UNKNOWN and "if_unknown" not in criterion:
                self.fail(
                    [*parts, "if_unknown"],
                    f"is required: {fact} may be unknown, and the file must say whether an "
                    "unknown value stratifies with a warning (warn) or needs review (review)",
                )
            if fact not in POPULATION_FACTS_WITH_UNKNOWN and "if_unknown" in criterion:
                self.fail([*parts, "if_unknown"], f"{fact} is never unknown")
        for fact in POPULATION_FACTS:
            if fact not in declared:
                self.fail(
                    ["population", "criteria"],
                    f"no criterion for {fact}: every eligibility fact must be declared "
                    f"({', '.join(POPULATION_FACTS)})",
                )
        lineage = criteria[declared["immunophenotype"]]["allowed"]
        return tuple(p for p in IMMUNOPHENOTYPES if p in lineage)

    def check_rules(self, group_ids: list[str], phenotypes: Sequence[str]) -> None:
        rules = self.data["rules"]
        for i, rule in enumerate(rules):
            if "group" in rule and rule["group"] not in group_ids:
                self.fail(
                    ["rules", i, "group"],
                    f"{rule['group']!r} is not one of the groups ({', '.join(group_ids)})",
                )
            for v, value in enumerate(rule["when"].get("immunophenotype", [])):
                if value not in phenotypes:
                    self.fail(
                        ["rules", i, "when", "immunophenotype", v],
                        f"{value!r} is outside the population ({', '.join(phenotypes)}): "
                        "such a case never reaches the rules",
                    )
        # First match wins: a rule that only matches relapses an earlier rule already
        # decides is dead text that would mislead a reader of the definition.
        compiled = [_conditions(rule["when"]) for rule in rules]
        cases = _all_relapses(phenotypes)
        for i, conditions in enumerate(compiled):
            matching = [case for case in cases if conditions.matches(*case)]
            if not matching:
                self.fail(["rules", i, "when"], "matches no valid relapse")
            live = [c for c in matching if not any(e.matches(*c) for e in compiled[:i])]
            if not live:
                self.fail(
                    ["rules", i, "when"],
                    "never applies: every relapse it matches is decided by an earlier rule",
                )

    def check_hsct(self, group_ids: list[str]) -> None:
        entries = self.data["hsct_indication"]
        for group in entries:
            if group not in group_ids:
                self.fail(
                    ["hsct_indication", group],
                    f"{group!r} is not one of the groups ({', '.join(group_ids)})",
                )
        for group in group_ids:
            if group not in entries:
                self.fail(["hsct_indication"], f"group {group!r} has no HSCT indication")
        blocks = self.data.get("block_types") or sorted(
            {s["block_type"] for t in self.data["schedule_templates"] for s in t["steps"]
             if "block_type" in s}
        )
        anchors = [(["end_of_induction"], self.data.get("end_of_induction"))] + [
            (["hsct_indication", group, "deciding_window"], entry.get("deciding_window"))
            for group, entry in entries.items()
        ]
        for parts, anchor in anchors:
            if anchor is not None and anchor.get("block_type", blocks[0]) not in blocks:
                self.fail(
                    [*parts, "block_type"],
                    f"{anchor['block_type']!r} is not one of the blocks ({', '.join(blocks)})",
                )
        for group, entry in entries.items():
            if entry["indicated"] == "mrd_threshold":
                continue
            keys = ("mrd_time_point", "mrd_threshold", "mrd_assay", "mrd_results")
            for key in (*keys, "deciding_window"):
                if key in entry:
                    self.fail(
                        ["hsct_indication", group, key],
                        "is only allowed with indicated: mrd_threshold",
                    )

    def check_schedules(self, group_ids: list[str]) -> None:
        templates = self.data["schedule_templates"]
        hsct = self.data["hsct_indication"]
        owner: dict[str, str] = {}
        template_ids: set[str] = set()
        for t, template in enumerate(templates):
            if template["id"] in template_ids:
                self.fail(["schedule_templates", t, "id"], f"{template['id']!r} is listed twice")
            template_ids.add(template["id"])
            for g, group in enumerate(template["groups"]):
                parts: list[str | int] = ["schedule_templates", t, "groups", g]
                if group not in group_ids:
                    self.fail(parts, f"{group!r} is not one of the groups ({', '.join(group_ids)})")
                if group in owner:
                    self.fail(parts, f"group {group!r} already has the template {owner[group]!r}")
                owner[group] = template["id"]
            indications = [(g, hsct[g]) for g in template["groups"] if g in hsct]
            self.check_steps(t, template, indications)
        for group in group_ids:
            if group not in owner:
                self.fail(["schedule_templates"], f"group {group!r} has no schedule template")
        self.check_block_types()

    def check_block_types(self) -> None:
        """A declared block vocabulary holds every block the templates plan."""
        declared = self.data.get("block_types")
        if declared is None:
            return
        for t, template in enumerate(self.data["schedule_templates"]):
            for s, step in enumerate(template["steps"]):
                if step.get("block_type") and step["block_type"] not in declared:
                    self.fail(
                        ["schedule_templates", t, "steps", s, "block_type"],
                        f"{step['block_type']!r} is not one of block_types ({', '.join(declared)})",
                    )

    def check_steps(
        self, t: int, template: dict[str, Any], indications: list[tuple[str, dict[str, Any]]]
    ) -> None:
        steps = template["steps"]
        possible = {e["indicated"] for _, e in indications}
        # HSCT may end up true / false for at least one group of the template.
        can_be_true = bool(possible & {True, "mrd_threshold"})
        can_be_false = bool(possible & {False, "mrd_threshold"})
        branch_of: dict[str, bool | None] = {}
        kinds_by_branch: dict[bool | None, set[str]] = {None: set(), True: set(), False: set()}
        mrd_points: set[str] = set()
        for s, step in enumerate(steps):
            parts: list[str | int] = ["schedule_templates", t, "steps", s]
            kind = step["kind"]
            if step["id"] in branch_of:
                self.fail([*parts, "id"], f"{step['id']!r} is listed twice in this template")
            if kind == "block" and "block_type" not in step:
                self.fail([*parts, "block_type"], "is required for a step of kind block")
            if kind != "block":
                for key in ("block_type", "duration_days"):
                    if key in step:
                        self.fail([*parts, key], f"is only allowed on blocks, not on {kind}")
            if kind == "mrd" and "mrd_time_point" not in step:
                self.fail([*parts, "mrd_time_point"], "is required for a step of kind mrd")
            if kind != "mrd" and "mrd_time_point" in step:
                self.fail([*parts, "mrd_time_point"], f"is only allowed on mrd, not on {kind}")
            if kind == "mrd":
                mrd_points.add(step["mrd_time_point"])
            branch = step.get("when_hsct")
            if branch is True and not can_be_true:
                self.fail(
                    [*parts, "when_hsct"], "HSCT is never indicated for this template's groups"
                )
            if branch is False and not can_be_false:
                self.fail(
                    [*parts, "when_hsct"], "HSCT is always indicated for this template's groups"
                )
            if branch is None and any(b is not None for b in branch_of.values()):
                self.fail(
                    [*parts, "when_hsct"],
                    "is required: steps after a when_hsct step belong to a branch "
                    "(the branches are the tail of the template)",
                )
            if kind in ("hsct_referral", "hsct") and not can_be_true:
                self.fail(
                    [*parts, "kind"],
                    f"{kind} in a template for groups where HSCT is not indicated",
                )
            if kind in ("hsct_referral", "hsct") and branch is False:
                self.fail([*parts, "kind"], f"{kind} in the branch without HSCT")
            anchor = step.get("anchor")
            if anchor is not None:
                if anchor not in branch_of:
                    self.fail(
                        [*parts, "anchor"], f"{anchor!r} is not an earlier step of this template"
                    )
                if branch_of[anchor] not in (None, branch):
                    self.fail([*parts, "anchor"], f"{anchor!r} belongs to the other HSCT branch")
            branch_of[step["id"]] = branch
            kinds_by_branch[branch].add(kind)
        for group, entry in indications:
            if entry["indicated"] is False:
                continue
            hsct_path = kinds_by_branch[None] | kinds_by_branch[True]
            for kind in ("hsct_referral", "hsct"):
                if kind not in hsct_path:
                    self.fail(
                        ["schedule_templates", t, "steps"],
                        f"has no {kind} step, but HSCT is (possibly) indicated for group {group!r}",
                    )
            if entry["indicated"] == "mrd_threshold" and entry["mrd_time_point"] not in mrd_points:
                self.fail(
                    ["schedule_templates", t, "steps"],
                    f"has no mrd step at {entry['mrd_time_point']}, which decides HSCT for "
                    f"group {group!r}",
                )

    def check_mrd_time_points(self) -> None:
        """The closed list names each time point once and holds every time point the
        file itself uses (MRD steps, the MRD rule of an HSCT indication)."""
        listed = self.data["mrd_time_points"]
        for i, point in enumerate(listed):
            if point in listed[:i]:
                self.fail(["mrd_time_points", i], f"{point!r} is listed twice")
        used: list[tuple[list[str | int], str]] = [
            (["hsct_indication", group, "mrd_time_point"], entry["mrd_time_point"])
            for group, entry in self.data["hsct_indication"].items()
            if "mrd_time_point" in entry
        ]
        for t, template in enumerate(self.data["schedule_templates"]):
            for s, step in enumerate(template["steps"]):
                if "mrd_time_point" in step:
                    parts: list[str | int] = ["schedule_templates", t, "steps", s]
                    used.append(([*parts, "mrd_time_point"], step["mrd_time_point"]))
        for parts, point in used:
            if point not in listed:
                self.fail(parts, f"{point!r} is not one of mrd_time_points ({', '.join(listed)})")


# --- building the objects --------------------------------------------------------------


def _build(path: Path, data: dict[str, Any]) -> ProtocolDefinition:
    sources = {
        key: Source(key=key, citation=value["citation"], note=value.get("note", ""))
        for key, value in data["sources"].items()
    }

    def cite(keys: Sequence[str]) -> str:
        return "; ".join(sources[k].citation for k in keys)

    def cited(entry: Mapping[str, Any]) -> dict[str, Any]:
        """The fields every cited entry shares, ready for its dataclass."""
        return {
            "id": entry["id"],
            "text": entry["text"].strip(),
            "sources": tuple(entry["sources"]),
            "citation": cite(entry["sources"]),
            "confidence": entry["confidence"],
            "note": entry.get("note", "").strip(),
        }

    def block_anchor(entry: Mapping[str, Any] | None) -> BlockAnchor | None:
        if entry is None:
            return None
        return BlockAnchor(
            **cited(entry),
            block_type=entry.get("block_type"),
            block_number=entry.get("block_number"),
            offset_days=entry["offset_days"],
            local_default=entry["local_default"],
        )

    tp = data["time_points"]
    plausible = tp["on_therapy_plausible_months"]
    time_points = TimePointThresholds(
        very_early_months=tp["very_early_months"],
        late_months=tp["late_months"],
        sources=tuple(tp["sources"]),
        citation=cite(tp["sources"]),
        confidence=tp["confidence"],
        on_therapy_plausible=SourcedLimit(
            **cited({"id": "on_therapy_plausible_months", "sources": [], **plausible}),
            value=plausible["value"],
            local_default=plausible["local_default"],
        ),
        note=tp.get("note", ""),
    )
    population = Population(
        description=data["population"].get("description", "").strip(),
        criteria=tuple(
            PopulationCriterion(
                **cited(c),
                fact=c["fact"],
                allowed=frozenset(c["allowed"]) if isinstance(c["allowed"], list) else None,
                minimum=c["allowed"].get("min") if isinstance(c["allowed"], dict) else None,
                maximum=c["allowed"].get("max") if isinstance(c["allowed"], dict) else None,
                if_unknown=(
                    UnknownPolicy(
                        **cited(c["if_unknown"]),
                        action=c["if_unknown"]["action"],
                        local_default=c["if_unknown"]["local_default"],
                    )
                    if "if_unknown" in c
                    else None
                ),
            )
            for c in data["population"]["criteria"]
        ),
    )
    groups = tuple(
        Group(id=g["id"], name=g["name"], description=g.get("description", ""))
        for g in data["groups"]
    )
    rules = tuple(
        Rule(
            **cited(r),
            group=r.get("group"),
            when=_conditions(r["when"]),
            readings=tuple(Reading(**cited(reading)) for reading in r.get("readings", ())),
        )
        for r in data["rules"]
    )
    fallback = FallbackRule(**cited(data["fallback"]))
    hsct = {
        group: HsctIndication(
            **cited(e),
            group=group,
            indicated=e["indicated"],
            mrd_time_point=e.get("mrd_time_point"),
            mrd_threshold=float(e["mrd_threshold"]) if "mrd_threshold" in e else None,
            mrd_assay=(
                MrdAssay(
                    method=e["mrd_assay"]["method"],
                    sensitivity=float(e["mrd_assay"]["sensitivity"]),
                    sources=tuple(e["mrd_assay"]["sources"]),
                    citation=cite(e["mrd_assay"]["sources"]),
                    confidence=e["mrd_assay"]["confidence"],
                )
                if "mrd_assay" in e
                else None
            ),
            deciding_window=block_anchor(e.get("deciding_window")),
            mrd_results=MappingProxyType(
                {
                    result: MrdResultRule(
                        **cited(entry),
                        result=result,
                        treatment=entry["treatment"],
                        local_default=entry["local_default"],
                    )
                    for result in MRD_QUALITATIVE_RESULTS
                    if (entry := e.get("mrd_results", {}).get(result)) is not None
                }
            ),
        )
        for group in (g.id for g in groups)
        for e in [data["hsct_indication"][group]]
    }
    templates = []
    for t in data["schedule_templates"]:
        steps: list[Step] = []
        for raw in t["steps"]:
            anchor = raw.get("anchor")
            if anchor is None and steps:
                # Default anchor: the previous step that applies in the same branch.
                branch = raw.get("when_hsct")
                anchor = next(s.id for s in reversed(steps) if s.when_hsct in (None, branch))
            steps.append(
                Step(
                    id=raw["id"],
                    kind=raw["kind"],
                    label=raw.get("label", _default_label(raw)),
                    offset_days=raw["offset_days"],
                    grace_days=raw["grace_days"],
                    local_default=raw["local_default"],
                    anchor=anchor,
                    block_type=raw.get("block_type"),
                    duration_days=raw.get("duration_days"),
                    mrd_time_point=raw.get("mrd_time_point"),
                    when_hsct=raw.get("when_hsct"),
                    note=raw.get("note", "").strip(),
                    sources=tuple(raw.get("sources", ())),
                )
            )
        templates.append(
            ScheduleTemplate(
                id=t["id"],
                name=t.get("name", t["id"]),
                groups=tuple(t["groups"]),
                steps=tuple(steps),
            )
        )
    thresholds = {
        name: AlertThreshold(
            name=name,
            value=e["value"],
            local_default=e["local_default"],
            note=e.get("note", "").strip(),
            sources=tuple(e.get("sources", ())),
        )
        for name in ALERT_THRESHOLD_NAMES
        for e in [data["alert_thresholds"][name]]
    }
    return ProtocolDefinition(
        slug=data["slug"],
        version=data["version"],
        title=data["title"],
        description=data.get("description", "").strip(),
        path=path,
        sources=MappingProxyType(sources),
        population=population,
        time_points=time_points,
        groups=groups,
        rules=rules,
        fallback=fallback,
        hsct_indication=MappingProxyType(hsct),
        schedule_templates=tuple(templates),
        alert_thresholds=MappingProxyType(thresholds),
        mrd_time_points=tuple(MrdTimePoint(p) for p in data["mrd_time_points"]),
        end_of_induction=block_anchor(data.get("end_of_induction")),
        block_types=tuple(
            data.get("block_types")
            or sorted({s.block_type for t in templates for s in t.steps if s.block_type})
        ),
    )


def _default_label(step: Mapping[str, Any]) -> str:
    kind = step["kind"]
    if kind == "block":
        return f"Block {step.get('block_type', '')}".strip()
    if kind == "mrd":
        return f"MRD ({MRD_TIME_POINT_WORDS.get(step.get('mrd_time_point', ''), '')})"
    return StepKind(kind).label


# --- public loading API ----------------------------------------------------------------


def load_definition(path: str | Path) -> ProtocolDefinition:
    """Read, validate and freeze one definition file."""
    path = Path(path)
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ProtocolDefinitionError(
            path, "", f"must be a mapping of fields (got {type(data).__name__})"
        )
    _check_structure(path, data)
    _Semantics(path, data).run()
    return _build(path, data)


def definition_files(directory: str | Path) -> list[Path]:
    directory = Path(directory)
    if not directory.is_dir():
        raise ProtocolDefinitionError(directory, "", "is not a directory of protocol definitions")
    return sorted(p for p in directory.iterdir() if p.suffix in DEFINITION_SUFFIXES)


def load_registry(*directories: str | Path) -> ProtocolRegistry:
    """Load every definition file of the directories, in order. A slug defined twice
    (a centre copying a built-in without renaming it) is an error, not an override."""
    loaded: dict[str, ProtocolDefinition] = {}
    for directory in directories:
        for path in definition_files(directory):
            definition = load_definition(path)
            if definition.slug in loaded:
                raise ProtocolDefinitionError(
                    path,
                    "slug",
                    f"{definition.slug!r} is already defined by "
                    f"{display_path(loaded[definition.slug].path)}",
                )
            loaded[definition.slug] = definition
    return ProtocolRegistry(definitions=MappingProxyType(loaded))


@functools.lru_cache(maxsize=8)
def cached_registry(directories: tuple[str, ...]) -> ProtocolRegistry:
    """:func:`load_registry`, once per process per set of directories (definitions are
    immutable; a changed file takes effect at the next start)."""
    return load_registry(*directories)


def builtin_registry() -> ProtocolRegistry:
    return cached_registry((str(BUILTIN_DIR),))
