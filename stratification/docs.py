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
    ScheduleTemplate,
)

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

    lines += [
        "",
        "### Time point of relapse",
        "",
        f"- **very early**: relapse date < initial diagnosis + {tp.very_early_months} "
        "calendar months",
        f"- **late**: a front-line end date is given and relapse date >= that date + "
        f"{tp.late_months} calendar months",
        "- **early**: neither; a relapse during front-line therapy (no end date) is never late",
        "",
        "Calendar months: the day is clamped to the end of the month "
        "(2020-08-31 + 18 months = 2022-02-28). "
        f"Source: {tp.citation} ({CONFIDENCE_WORDS[tp.confidence]}).",
        "",
        "### Stratification rules",
        "",
        "In order; the first rule whose conditions all hold decides the group.",
        "",
    ]
    rows = [
        [
            n,
            f"`{r.id}`",
            r.text + (f" *{r.note}*" if r.note else ""),
            r.when.describe(),
            r.group,
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
        "the service starts. *Confidence*: **stated** = in the named source; **recalled** "
        "/ **inferred** = not checked against the primary paper or the project's reading — "
        "a local default that a centre must confirm. Every number marked *local default* "
        "is not from a source and is to be confirmed.",
        "",
        "Contents: " + ", ".join(f"[{d.title}](#{_anchor(d)})" for d in ordered) + ".",
        "",
    ]
    for definition in ordered:
        parts.append(render_definition(definition))
    return "\n".join(parts).rstrip() + "\n"


def _anchor(definition: ProtocolDefinition) -> str:
    """GitHub's heading anchor for the definition's section heading."""
    heading = f"{definition.title} ({definition.slug}, version {definition.version})"
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")
