"""Benchmark: classify a synthetic 100k-row relapse cohort with both built-in protocols.

    .venv/bin/python -m bench.bench_engine [--rows 100000] [--seed 20261124]
                                           [--repeat 3] [--write-docs docs/benchmarks.md]

Generates a seeded CSV into a temporary directory (about 1 % of the rows deliberately
invalid, to exercise the validation path), then times the pipeline a cohort import
runs: read the CSV, parse and validate each row (``validate_facts``), classify every
valid row with ``stratify`` for each protocol. Prints rows/s, wall time, the command
and the machine; ``--write-docs`` replaces the "Stratification engine" section of
docs/benchmarks.md with the result. Django-free, like the engine.
"""

from __future__ import annotations

import argparse
import csv
import random
import shlex
import sys
import tempfile
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

from bench.common import machine, write_section
from stratification.definitions import builtin_registry
from stratification.engine import Decision, stratify
from stratification.facts import EM_SITES, RelapseFacts, validate_facts

COLUMNS = [
    "initial_diagnosis_date",
    "frontline_status",
    "frontline_therapy_end_date",
    "relapse_date",
    "immunophenotype",
    "site",
    "em_sites",
    "bm_blast_percent",
    "mrd_end_of_induction",
    "relapse_number",
    "prior_hsct",
    "bcr_abl1",
    "age_at_diagnosis_months",
]
TODAY = date(2026, 11, 24)
SECTION = "## Stratification engine"


def generate(path: Path, rows: int, seed: int) -> None:
    """A plausible cohort: diagnoses 2000-2019, relapses 2 months to 6.5 years later
    (mostly around 2 years), most after the end of a ~2-year front-line therapy, some
    during it, a few with the front-line status not entered; a few outside the
    protocols' population (second relapse, prior HSCT, Ph+, infant) and a few with
    BCR::ABL1 or the age at diagnosis unknown. Every date lies before TODAY, so only the
    deliberate 1 % is invalid."""
    rng = random.Random(seed)
    first = date(2000, 1, 1).toordinal()
    last = date(2019, 12, 31).toordinal()
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for _ in range(rows):
            diagnosis = date.fromordinal(rng.randint(first, last))
            relapse = diagnosis + timedelta(days=int(rng.triangular(60, 2400, 700)))
            end = diagnosis + timedelta(days=rng.randint(600, 800))
            status = "on_therapy" if end > relapse else "completed"
            if rng.random() < 0.03:
                status = "unknown"
            end_text = end.isoformat() if status == "completed" else ""
            site = rng.choices(["isolated_bm", "combined", "isolated_em"], [55, 20, 25])[0]
            if site == "isolated_bm":
                em: list[str] = []
                blasts = rng.uniform(25, 100)
            else:
                em = rng.sample(EM_SITES, rng.randint(1, 2))
                blasts = rng.uniform(5, 100) if site == "combined" else rng.uniform(0, 4.9)
            if rng.random() < 0.01:  # an inconsistent row: too few blasts for the site
                blasts = 1.0 if site != "isolated_em" else 30.0
            mrd = "" if rng.random() < 0.5 else f"{10 ** rng.uniform(-5, -1):.6f}"
            roll = rng.random()  # age at diagnosis: 3 % unknown, 2 % infants
            if roll < 0.03:
                age = ""
            elif roll < 0.05:
                age = str(rng.randint(1, 11))
            else:
                age = str(rng.randint(12, 216))
            writer.writerow(
                [
                    diagnosis.isoformat(),
                    status,
                    end_text,
                    relapse.isoformat(),
                    "T" if rng.random() < 0.12 else "B",
                    site,
                    ";".join(em),
                    f"{blasts:.1f}",
                    mrd,
                    2 if rng.random() < 0.04 else 1,
                    "true" if rng.random() < 0.02 else "false",
                    rng.choices(["negative", "unknown", "positive"], [92, 5, 3])[0],
                    age,
                ]
            )


def read(path: Path) -> tuple[list[RelapseFacts], int]:
    """Parse and validate every row; returns the valid facts and the invalid count."""
    facts: list[RelapseFacts] = []
    invalid = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            values = {
                "initial_diagnosis_date": row["initial_diagnosis_date"],
                "frontline_status": row["frontline_status"],
                "frontline_therapy_end_date": row["frontline_therapy_end_date"] or None,
                "relapse_date": row["relapse_date"],
                "immunophenotype": row["immunophenotype"],
                "site": row["site"],
                "em_sites": row["em_sites"].split(";") if row["em_sites"] else [],
                "bm_blast_percent": float(row["bm_blast_percent"]),
                "mrd_end_of_induction": (
                    float(row["mrd_end_of_induction"]) if row["mrd_end_of_induction"] else None
                ),
                "relapse_number": int(row["relapse_number"]),
                "prior_hsct": row["prior_hsct"] == "true",
                "bcr_abl1": row["bcr_abl1"],
                "age_at_diagnosis_months": (
                    int(row["age_at_diagnosis_months"]) if row["age_at_diagnosis_months"] else None
                ),
            }
            if validate_facts(values, TODAY):
                invalid += 1
                continue
            facts.append(RelapseFacts.from_mapping(values))
    return facts, invalid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261124)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of N runs")
    parser.add_argument("--write-docs", type=Path, help="update this benchmarks Markdown file")
    args = parser.parse_args(argv)
    command = "python -m bench.bench_engine " + shlex.join(sys.argv[1:] if argv is None else argv)

    registry = builtin_registry()  # loaded before timing: once per process in the service
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cohort.csv"
        generate(path, args.rows, args.seed)
        size_mb = path.stat().st_size / 1e6

        # Best of --repeat runs: the machine may be shared; the minimum is the figure
        # least disturbed by other processes.
        best_read = best_wall = float("inf")
        results: dict[str, tuple[float, Counter[str]]] = {}
        for _ in range(args.repeat):
            wall_start = time.perf_counter()
            facts, invalid = read(path)
            best_read = min(best_read, time.perf_counter() - wall_start)
            for protocol in sorted(registry, key=lambda d: d.slug):
                started = time.perf_counter()
                decisions: list[Decision] = [stratify(f, protocol) for f in facts]
                elapsed = time.perf_counter() - started
                groups = Counter(d.risk_group or "needs_review" for d in decisions)
                del decisions  # each protocol is timed with the same live heap
                previous = results.get(protocol.slug, (float("inf"), groups))[0]
                results[protocol.slug] = (min(previous, elapsed), groups)
            best_wall = min(best_wall, time.perf_counter() - wall_start)
        read_s, wall_s = best_read, best_wall

    rows = args.rows
    report = [
        SECTION,
        "",
        f"Command: `{command}` (from the repository root, with the project's venv).",
        "",
        f"Machine: {machine()}.",
        "",
        f"Input: {rows:,} seeded synthetic rows (seed {args.seed}, {size_mb:.1f} MB CSV in a "
        f"temporary directory); {invalid:,} rows refused by `validate_facts` as intended, "
        f"{len(facts):,} classified by each protocol. Best of {args.repeat} runs.",
        "",
        "| Phase | Time (s) | Rows/s |",
        "|---|---|---|",
        f"| read CSV + parse + `validate_facts` | {read_s:.2f} | {rows / read_s:,.0f} |",
    ]
    for slug, (elapsed, _) in results.items():
        report.append(f"| `stratify` with {slug} | {elapsed:.2f} | {len(facts) / elapsed:,.0f} |")
    report += [
        f"| **wall time, whole pipeline (both protocols)** | **{wall_s:.2f}** | "
        f"{rows / wall_s:,.0f} |",
        "",
    ]
    for slug, (_, groups) in results.items():
        spread = ", ".join(f"{g} {n:,}" for g, n in sorted(groups.items()))
        report.append(f"Outcome spread, {slug}: {spread}.")
        report.append("")
    section = "\n".join(report)
    print(section)
    if args.write_docs:
        write_section(args.write_docs, SECTION, section)
        print(f"Updated the '{SECTION[3:]}' section of {args.write_docs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
