"""Render the protocol definitions as Markdown (docs/protocols.md).

The documentation is generated from the same files the engine reads, so it cannot
drift from what the service does; a test fails when the committed copy is stale
(`make docs` regenerates it). Django-free.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stratification.definitions import (
    BUILTIN_DIR,
    MRD_TIME_POINT_WORDS,
    HsctIndication,
    ProtocolDefinition,
    Rule,
    ScheduleTemplate,
    SourcedLimit,
)
from stratification.engine import (
    BLASTS_MISSING_RULE,
    EM_MARROW_NOT_ASSESSED_RULE,
    M2_MARROW_RULE,
    ON_THERAPY_CONFIRMED_RULE,
    TIME_POINT_UNDETERMINED_RULE,
)
from stratification.facts import EM_MARROW_SOURCE, M2_RELAPSE_SOURCE, SITE_DEFINITION_SOURCE

REPO_ROOT = BUILTIN_DIR.parent.parent

CONFIDENCE_WORDS = {
    "stated": "stated",
    "recalled": "recalled — local default, to confirm",
    "inferred": "inferred — local default, to confirm",
}


def _cell(text: object) -> str:
    """One Markdown table cell: no pipes or line breaks may leak out of it."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: Iterable[str], rows: Iterable[Iterable[object]]) -> list[str]:
    header = list(header)
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def _repo_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def _hsct_words(indication: HsctIndication) -> str:
    if indication.indicated is True:
        return "indicated"
    if indication.indicated is False:
        return "not indicated"
    point = MRD_TIME_POINT_WORDS.get(indication.mrd_time_point or "", "")
    return f"if MRD at {point} >= {indication.mrd_threshold:g}; not below; undecided while unknown"


def _confidence(confidence: str, local_default: bool = False) -> str:
    """Confidence in words; recalled and inferred say "local default" already."""
    words = CONFIDENCE_WORDS[confidence]
    if local_default and confidence == "stated":
        words += " — local default, to confirm"
    return words


def _basis(entry: SourcedLimit) -> str:
    note = f" {entry.note}" if entry.note else ""
    sources = f" Source: {entry.citation}." if entry.sources else ""
    return f"Confidence: {_confidence(entry.confidence, entry.local_default)}.{note}{sources}"


def _readings(rule: Rule) -> str:
    return "".join(
        f" **`{r.id}`** ({CONFIDENCE_WORDS[r.confidence]}; {r.citation}): {r.text}"
        for r in rule.readings
    )


def _population(definition: ProtocolDefinition) -> list[str]:
    population = definition.population
    lines = ["", "### Population", ""]
    if population.description:
        lines += [population.description, ""]
    lines += [
        "A case outside any criterion gets no group: `needs_review`, the exclusion named "
        "by its id. An unknown value does what the last column says.",
        "",
    ]
    rows = []
    for c in population.criteria:
        unknown = "—"
        if c.if_unknown is not None:
            u = c.if_unknown
            action = {"warn": "stratify with warning", "review": "needs review"}[u.action]
            unknown = (
                f"{action} `{u.id}` ({_confidence(u.confidence, u.local_default)}): {u.text}"
                + (f" *{u.note}*" if u.note else "")
            )
        rows.append(
            [
                f"`{c.id}`",
                c.describe(),
                c.text + (f" *{c.note}*" if c.note else ""),
                c.citation,
                CONFIDENCE_WORDS[c.confidence],
                unknown,
            ]
        )
    header = ["Exclusion", "Inside when", "Text", "Source", "Confidence", "If unknown"]
    lines += _table(header, rows)
    return lines


def _mrd_rules(definition: ProtocolDefinition) -> list[str]:
    lines: list[str] = []
    for group, indication in definition.hsct_indication.items():
        if indication.indicated != "mrd_threshold":
            continue
        assay = indication.mrd_assay
        lines += ["", f"#### MRD rule of group {group} (`{indication.id}`)", ""]
        if assay is not None:
            lines += [
                f"Assay: {assay.method}, sensitivity {assay.sensitivity:g}. Source: "
                f"{assay.citation} ({CONFIDENCE_WORDS[assay.confidence]}).",
                "",
            ]
        window = indication.deciding_window
        if window is not None:
            lines += [
                f"Deciding sample (`{window.id}`): the latest valid MRD at "
                f"{indication.mrd_time_point} by sample date, sampled on or after "
                f"{window.words}; an earlier one is kept and does not decide. {window.text} "
                f"Source: {window.citation} "
                f"({_confidence(window.confidence, window.local_default)})."
                + (f" *{window.note}*" if window.note else ""),
                "",
            ]
        words = {
            "below_threshold_if_sensitive": "below the threshold (not indicated) when the "
            f"result's sensitivity is <= {indication.mrd_threshold:g}; undecided otherwise",
            "undecided": "undecided: a clinician decides",
        }
        lines += _table(
            ["Result", "Rule", "Treated as", "Text", "Source", "Confidence"],
            [
                [
                    "quantified value",
                    f"`{indication.id}`",
                    f"indicated at >= {indication.mrd_threshold:g}, not indicated below",
                    indication.text,
                    indication.citation,
                    CONFIDENCE_WORDS[indication.confidence],
                ],
                *[
                    [
                        r.result.replace("_", " "),
                        f"`{r.id}`",
                        words[r.treatment],
                        r.text + (f" *{r.note}*" if r.note else ""),
                        r.citation,
                        _confidence(r.confidence, r.local_default),
                    ]
                    for r in indication.mrd_results.values()
                ],
            ],
        )
    return lines


def _template(definition: ProtocolDefinition, template: ScheduleTemplate) -> list[str]:
    days = template.planned_days()
    has_branches = any(step.when_hsct is not None for step in template.steps)
    lines = [
        f"#### `{template.id}` — {template.name}",
        "",
        f"Groups: {', '.join(template.groups)}. Planned day = day after the start of the "
        "course when every step is on time; offsets count from the anchor step's actual "
        "date.",
        "",
    ]
    header = ["#", "Step", "Kind", "Block / time point", "Anchor", "Offset", "Day", "Grace"]
    if has_branches:
        header.append("When")
    header.append("Basis")
    rows = []
    for number, step in enumerate(template.steps, start=1):
        detail = step.block_type or MRD_TIME_POINT_WORDS.get(step.mrd_time_point or "", "—")
        if step.block_type and step.duration_days:
            detail = f"{step.block_type} ({step.duration_days} days)"
        row: list[object] = [
            number,
            f"{step.label} (`{step.id}`)",
            step.kind,
            detail,
            f"`{step.anchor}`" if step.anchor else "course start",
            step.offset_days,
            days[step.id],
            step.grace_days,
        ]
        if has_branches:
            row.append({None: "always", True: "HSCT", False: "no HSCT"}[step.when_hsct])
        basis = f"local default: {step.note}" if step.local_default else ""
        if step.sources:
            basis += f" Source: {definition.citation(step.sources)}."
        row.append(basis.strip())
        rows.append(row)
    return [*lines, *_table(header, rows), ""]


def render_definition(definition: ProtocolDefinition) -> str:
    d = definition
    tp = d.time_points
    lines = [
        f"## {d.title} (`{d.slug}`, version {d.version})",
        "",
        f"File: `{_repo_path(d.path)}`",
        "",
    ]
    if d.description:
        lines += [d.description, ""]

    lines += ["### Sources", ""]
    lines += _table(
        ["Key", "Citation", "Note"],
        [[f"`{s.key}`", s.citation, s.note or "—"] for s in d.sources.values()],
    )

    lines += _population(d)
    plausible = tp.on_therapy_plausible
    lines += [
        "",
        "### Time point of relapse",
        "",
        f"- **very early**: relapse date < initial diagnosis + {tp.very_early_months} "
        "calendar months, whatever the front-line status",
        f"- **late**: front-line therapy `completed` (with its end date) and relapse date >= "
        f"the end date + {tp.late_months} calendar months",
        "- **early**: neither; a relapse during front-line therapy (`on_therapy`) is never late",
        "- **not determined**: front-line status `unknown` (or not given without an end "
        "date) and the relapse not very early — `needs_review` "
        f"(`{TIME_POINT_UNDETERMINED_RULE}`), the reason giving the latest end date that "
        "would make it late and what the rules give for late and for early",
        "",
        "Calendar months: the day is clamped to the end of the month "
        "(2020-08-31 + 18 months = 2022-02-28). "
        f"Source: {tp.citation} ({CONFIDENCE_WORDS[tp.confidence]}).",
        "",
        f"`on_therapy` at a relapse more than {plausible.value} months after diagnosis is "
        "refused as implausible unless confirmed (`confirm_implausible` with "
        "`implausible_reason`; the decision then carries the warning "
        f"`{ON_THERAPY_CONFIRMED_RULE}`). {_basis(plausible)}",
        "",
        "### Stratification rules",
        "",
        "In order; the first rule whose conditions all hold decides the group. A rule "
        "without a group sends the case to review with the readings listed.",
        "",
    ]
    rows = [
        [
            n,
            f"`{r.id}`",
            r.text + (f" *{r.note}*" if r.note else "") + _readings(r),
            r.when.describe(),
            r.group or "none: needs review",
            r.citation,
            CONFIDENCE_WORDS[r.confidence],
        ]
        for n, r in enumerate(d.rules, start=1)
    ]
    fb = d.fallback
    rows.append(
        [
            "—",
            f"`{fb.id}`",
            fb.text + (f" *{fb.note}*" if fb.note else ""),
            "no rule matched",
            "none: needs review",
            fb.citation,
            CONFIDENCE_WORDS[fb.confidence],
        ]
    )
    lines += _table(["#", "Rule", "Text", "Conditions", "Group", "Source", "Confidence"], rows)

    lines += ["", "### Groups and HSCT indication", ""]
    lines += _table(
        ["Group", "Name", "HSCT", "Rule", "Text", "Source", "Confidence"],
        [
            [
                g.id,
                g.name,
                _hsct_words(d.hsct_indication[g.id]),
                f"`{d.hsct_indication[g.id].id}`",
                d.hsct_indication[g.id].text,
                d.hsct_indication[g.id].citation,
                CONFIDENCE_WORDS[d.hsct_indication[g.id].confidence],
            ]
            for g in d.groups
        ],
    )

    lines += _mrd_rules(d)

    lines += [
        "",
        "### MRD time points",
        "",
        "An MRD result is recorded at one of these (a closed list; anything else is "
        "refused): " + ", ".join(f"`{p}` ({p.label})" for p in d.mrd_time_points) + ".",
    ]

    lines += ["", "### Alert thresholds", ""]
    lines += _table(
        ["Threshold", "Days", "Basis"],
        [
            [
                f"`{a.name}`",
                a.value,
                f"local default: {a.note}" if a.local_default else d.citation(a.sources),
            ]
            for a in d.alert_thresholds.values()
        ],
    )

    lines += ["", "### Schedule templates", ""]
    lines += [
        "Blocks a course may record: " + ", ".join(f"`{b}`" for b in d.block_types) + ".",
        "",
    ]
    if (end := d.end_of_induction) is not None:
        lines += [
            f"End of induction (`{end.id}`): {end.words}, from the blocks as recorded; CR2 "
            f"is judged no earlier. {end.text} Source: {end.citation} "
            f"({_confidence(end.confidence, end.local_default)})."
            + (f" *{end.note}*" if end.note else ""),
            "",
        ]
    for template in d.schedule_templates:
        lines += _template(d, template)
    return "\n".join(lines).rstrip() + "\n"


def render(definitions: Iterable[ProtocolDefinition]) -> str:
    """The whole docs/protocols.md, definitions in slug order."""
    ordered = sorted(definitions, key=lambda d: d.slug)
    parts = [
        "# Protocol definitions",
        "",
        "<!-- Generated from stratification/protocols/*.yaml by `make docs` "
        "(`python manage.py protocols docs --output docs/protocols.md`). "
        "Do not edit by hand. -->",
        "",
        "Each built-in protocol version is a data file under `stratification/protocols/`, "
        "validated against `stratification/protocol_schema.json` and cross-checked when "
        "the service starts. *Confidence*: **stated** = the named source says exactly "
        "this; **recalled** = not checked against the primary paper (including what only "
        "the seed article says); **inferred** = the project's reading. Recalled and "
        "inferred are local defaults that a centre must confirm. Every number marked "
        "*local default* is not from a source and is to be confirmed. A decision shows "
        "each reason's confidence to the clinician.",
        "",
        "Contents: " + ", ".join(f"[{d.title}](#{_anchor(d)})" for d in ordered) + ".",
        "",
        *_site_checks(),
    ]
    for definition in ordered:
        parts.append(render_definition(definition))
    return "\n".join(parts).rstrip() + "\n"


def _site_checks() -> list[str]:
    """The site definitions every protocol's rules rely on (stratification.facts and
    the engine's site review), with the rules that send a case to review."""
    return [
        "## Site of relapse (all protocols)",
        "",
        "The rules match on the site, which the marrow blast count must back "
        f"({SITE_DEFINITION_SOURCE}):",
        "",
        "- **isolated_bm**: >= 25 % blasts (M3), no extramedullary disease. 5 to < 25 % "
        "(M2) without extramedullary disease is accepted but is not a BFM relapse category "
        f"on its own: `needs_review` (`{M2_MARROW_RULE}`), it needs confirmation (e.g. by "
        f"MRD) and a clinician assigns the group ({M2_RELAPSE_SOURCE}). Below 5 % is "
        "refused (no marrow relapse).",
        "- **combined**: >= 5 % blasts plus extramedullary disease.",
        "- **isolated_em**: < 5 % blasts, extramedullary disease proven. Without a marrow "
        f"blast count: `needs_review` (`{EM_MARROW_NOT_ASSESSED_RULE}`) — submicroscopic "
        "marrow involvement (MRD >= 10^-4) was found in 46 of 64 apparently isolated "
        f"extramedullary relapses ({EM_MARROW_SOURCE}). A marrow MRD at relapse is a course "
        "record, made after the decision, so the blast count is what this check reads.",
        f"- A marrow site without its blast count: `needs_review` (`{BLASTS_MISSING_RULE}`) "
        "where it reaches the engine; the services refuse it.",
        "",
        "The relapse number and prior HSCT are never assumed: unknown is `needs_review` "
        "(`if_unknown` in each population below).",
        "",
    ]


def _anchor(definition: ProtocolDefinition) -> str:
    """GitHub's heading anchor for the definition's section heading."""
    heading = f"{definition.title} ({definition.slug}, version {definition.version})"
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")
