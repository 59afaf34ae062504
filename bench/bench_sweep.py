"""Benchmark: one full alert sweep over 10k and 100k active courses on PostgreSQL.

    .venv/bin/python -m bench.bench_sweep \\
        --database-url postgres://postgres@127.0.0.1:5432/rezcourse_bench \\
        --sizes 10000 100000 --write-docs docs/benchmarks.md

For each size it uses its own database (the URL's name plus ``_<size>``, created if
missing), tops its synthetic cohort up to that many active courses (the cohort is
kept between runs), then measures:

* the set-based insert floor: the due alerts and their events written by one
  INSERT ... SELECT each, committed;
* the opening sweep (no alerts yet: every due alert is inserted);
* a steady sweep (nothing changed: the common case every five minutes);
* the plain SQL statements that select the same due alerts, hand-written (one per
  rule, each rule's condition as docs/alerts.md states it);
* the number of SQL queries of each sweep.

It checks that the plain SQL finds exactly the alerts the sweep keeps open, and
prints the ratios opening sweep / floor (target: at most 2x) and steady sweep /
plain SQL (target: at most 1.4x); the query count must not depend on the size.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from datetime import date
from pathlib import Path

SECTION = "## Alert sweep"
TEAM = "bench"


def _setup(database_url: str) -> None:
    """Point Django at this database (creating and migrating it if needed). May be
    called again to switch to another database within the same process."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    import psycopg

    base, _, name = database_url.rpartition("/")
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.apps import apps

    if not apps.ready:
        django.setup()
    from django.core.management import call_command
    from django.db import connection

    connection.close()
    connection.settings_dict["NAME"] = name
    call_command("migrate", verbosity=0)


# Hand-written, one statement per rule, as a DBA would write them from the rules'
# conditions (docs/alerts.md), not the ORM's compiled SQL. Shared pieces:
# a valid (not voided) referral; the non-responders (courses past induction whose
# latest valid assessment is not CR2: a non-CR assessment with no later one and no
# transplant, in non-CR, on or after it), which only non_response speaks for; the MRD
# steps that decide an undecided HSCT indication.
VALID_REFERRAL = "courses_hsctreferral r ON r.course_id = c.id AND r.voided_at IS NULL"
# A transplant (in non-CR, with a reason) on or after the non-CR assessment: the course
# is no non-responder.
NOT_TRANSPLANTED_AFTER = """
      AND NOT EXISTS (
        SELECT 1 FROM courses_coursetransition t WHERE t.course_id = a.course_id
          AND t.name = 'transplant' AND t."on" >= a.assessed_on)"""
NON_RESPONDERS = f"""
    SELECT a.course_id FROM courses_responseassessment a
    JOIN courses_treatmentcourse ac ON ac.id = a.course_id
    WHERE NOT a.cr2 AND a.voided_at IS NULL AND ac.state = ANY(%(after_induction)s)
      AND NOT EXISTS (
        SELECT 1 FROM courses_responseassessment l WHERE l.course_id = a.course_id
          AND l.voided_at IS NULL AND (l.assessed_on, l.id) > (a.assessed_on, a.id))
      {NOT_TRANSPLANTED_AFTER}"""
DECIDING_MRD = """s.kind = 'mrd' AND c.hsct_indicated IS NULL
    AND c.protocol_slug || '/' || c.risk_group || '/' || s.mrd_time_point = ANY(%(deciding)s)"""
INDICATED_OR_PROPOSED = "(c.hsct_indicated OR (c.hsct_indicated IS NULL AND c.hsct_proposed))"
# The decision proposes HSCT (the engine stores its group's indication on it).
PROPOSES_HSCT = "d.hsct_indicated"

PLAIN_SQL = {
    "hsct_referral_missing": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        LEFT JOIN {VALID_REFERRAL}
        WHERE c.state = ANY(%(scheduled)s) AND r.id IS NULL
          AND c.id NOT IN ({NON_RESPONDERS})
          AND ((c.start_date <= %(today)s - %(referral)s AND {INDICATED_OR_PROPOSED})
               OR (c.hsct_indicated IS DISTINCT FROM false AND c.id IN (
                     SELECT s.course_id FROM courses_plannedstep s
                     WHERE s.kind = 'hsct_referral' AND s.status = 'planned'
                       AND s.due_on + s.grace_days + 1 <= %(today)s)))""",
    "hsct_delayed": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        JOIN courses_responseassessment a ON a.course_id = c.id
        LEFT JOIN {VALID_REFERRAL}
        WHERE c.state = ANY(%(scheduled)s) AND {INDICATED_OR_PROPOSED}
          AND a.cr2 AND a.voided_at IS NULL AND r.performed_on IS NULL
          AND c.id NOT IN ({NON_RESPONDERS})
        GROUP BY c.id HAVING min(a.assessed_on) <= %(today)s - %(delayed)s""",
    "mrd_missing_before_hsct": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        JOIN {VALID_REFERRAL}
        WHERE c.state = ANY(%(scheduled)s)
          AND (r.performed_on IS NOT NULL
               OR (r.planned_on IS NOT NULL AND r.planned_on - %(within)s <= %(today)s))
          AND NOT EXISTS (
            SELECT 1 FROM courses_mrdresult m WHERE m.course_id = c.id AND m.voided_at IS NULL
              AND m.sampled_on <= coalesce(r.performed_on, r.planned_on)
              AND m.sampled_on >= coalesce(r.performed_on, r.planned_on) - %(window)s)""",
    "step_overdue": f"""
        SELECT s.course_id, 'step:' || s.id FROM courses_plannedstep s
        JOIN courses_treatmentcourse c ON c.id = s.course_id
        WHERE s.status = 'planned' AND s.kind = ANY(%(kinds)s)
          AND c.state = ANY(%(scheduled)s) AND s.due_on + s.grace_days + 1 <= %(today)s
          AND NOT coalesce({DECIDING_MRD}, false)
          AND s.course_id NOT IN ({NON_RESPONDERS})""",
    "course_stalled": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        WHERE c.state = ANY(%(active)s)
          AND coalesce(c.last_clinical_on, (c.last_activity_at AT TIME ZONE %(zone)s)::date)
              + CASE c.state WHEN 'maintenance' THEN %(stalled_maintenance)s
                             WHEN 'transplanted' THEN %(stalled_transplanted)s
                             ELSE %(stalled)s END <= %(today)s
          AND NOT (c.state = 'registered' AND c.decision_id IS NOT NULL)
          AND c.id NOT IN ({NON_RESPONDERS})""",
    "stratification_stale": """
        SELECT c.id, CASE WHEN jsonb_array_length(c.decision_stale_fields) > 0
                          THEN 'decision:stale' ELSE 'decision:unconfirmed' END
        FROM courses_treatmentcourse c
        LEFT JOIN stratification_stratificationdecision d ON d.id = c.decision_id
        WHERE c.state = ANY(%(active)s) AND c.risk_group IS NOT NULL
          AND c.decision_stale_since <= %(today)s
          AND (jsonb_array_length(c.decision_stale_fields) > 0 OR d.confirmed_at IS NULL)""",
    "hsct_decision_pending": """
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        WHERE c.state = ANY(%(scheduled)s) AND c.hsct_indicated IS NULL
          AND c.hsct_proposed IS NOT NULL
          AND coalesce(c.hsct_proposed_on, (c.last_activity_at AT TIME ZONE %(zone)s)::date)
              <= %(today)s - %(pending)s""",
    "mrd_decision_missing": f"""
        SELECT s.course_id, 'step:' || s.id FROM courses_plannedstep s
        JOIN courses_treatmentcourse c ON c.id = s.course_id
        WHERE s.status = 'planned' AND c.state = ANY(%(scheduled)s) AND {DECIDING_MRD}
          AND s.due_on <= %(today)s - %(mrd_decision)s
          AND s.course_id NOT IN ({NON_RESPONDERS})""",
    "non_response": f"""
        SELECT a.course_id, 'course' FROM courses_responseassessment a
        JOIN courses_treatmentcourse c ON c.id = a.course_id
        WHERE NOT a.cr2 AND a.voided_at IS NULL AND c.state = ANY(%(after_induction)s)
          AND a.assessed_on <= %(today)s - %(non_response)s
          AND NOT EXISTS (
            SELECT 1 FROM courses_responseassessment l WHERE l.course_id = a.course_id
              AND l.voided_at IS NULL AND (l.assessed_on, l.id) > (a.assessed_on, a.id))
          {NOT_TRANSPLANTED_AFTER}""",
    # The pre-HSCT MRD: the latest valid result by sample date inside the window
    # before the planned transplant, whatever its label; positive, not quantifiable
    # counts as positive.
    "mrd_high_before_hsct": f"""
        SELECT c.id, 'course' FROM courses_mrdresult m
        JOIN courses_treatmentcourse c ON c.id = m.course_id
        JOIN {VALID_REFERRAL}
        WHERE m.voided_at IS NULL AND c.state = ANY(%(scheduled)s)
          AND r.planned_on IS NOT NULL AND r.performed_on IS NULL
          AND m.sampled_on BETWEEN r.planned_on - %(window)s AND r.planned_on
          AND (m.value >= %(mrd_high)s OR m.qualitative = 'positive_not_quantifiable')
          AND m.sampled_on <= %(today)s
          AND NOT EXISTS (
            SELECT 1 FROM courses_mrdresult l WHERE l.course_id = m.course_id
              AND l.voided_at IS NULL
              AND l.sampled_on BETWEEN r.planned_on - %(window)s AND r.planned_on
              AND (l.sampled_on, l.id) > (m.sampled_on, m.id))""",
    "donor_search_stalled": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        JOIN {VALID_REFERRAL}
        WHERE c.state = ANY(%(scheduled)s) AND r.performed_on IS NULL
          AND (r.donor_search_status = 'not_started'
               OR (r.donor_search_status = 'no_donor' AND r.planned_on IS NULL))
          AND c.hsct_indicated IS DISTINCT FROM false
          AND r.referred_on <= %(today)s - %(donor)s
          AND c.id NOT IN ({NON_RESPONDERS})""",
    "hsct_proposal_unconfirmed": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        JOIN stratification_stratificationdecision d ON d.id = c.decision_id
        WHERE c.state = 'registered' AND d.confirmed_at IS NULL AND {PROPOSES_HSCT}
          AND (d.created_at AT TIME ZONE %(zone)s)::date <= %(today)s - %(proposal)s""",
    "stratification_unconfirmed": f"""
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        JOIN stratification_stratificationdecision d ON d.id = c.decision_id
        WHERE c.state = 'registered' AND d.confirmed_at IS NULL
          AND NOT coalesce({PROPOSES_HSCT}, false)
          AND (d.created_at AT TIME ZONE %(zone)s)::date <= %(today)s - %(unconfirmed)s""",
    "hsct_decision_review": """
        SELECT c.id, 'course' FROM courses_treatmentcourse c
        WHERE c.state = ANY(%(active)s) AND c.hsct_review_since <= %(today)s""",
    "cumulative_delay": """
        SELECT s.course_id, 'course' FROM courses_plannedstep s
        JOIN courses_treatmentcourse c ON c.id = s.course_id
        WHERE s.status = 'done' AND c.state = ANY(%(scheduled)s)
          AND s.done_on >= s.planned_on + %(cumulative)s
        GROUP BY s.course_id HAVING min(s.done_on) <= %(today)s""",
}


# The same, with the overdue-step statement in the form the rule now has: the implied
# bound on due_on that the partial index of open steps range-scans (issue 16). The
# steady sweep is compared with both: the baseline as recorded before, and this one,
# which gains what the sweep gained from the index.
PLAIN_SQL_INDEXED = {
    **PLAIN_SQL,
    "step_overdue": PLAIN_SQL["step_overdue"].replace(
        "s.kind = ANY(%(kinds)s)", "s.kind = ANY(%(kinds)s) AND s.due_on < %(today)s"
    ),
}


def plain_params(today: date, zone: str) -> dict:
    from django.conf import settings

    from notifications import rules
    from stratification.selectors import protocol_registry

    d = settings.REZCOURSE_ALERT_DEFAULTS
    return {
        "today": today,
        "zone": zone,
        "scheduled": list(rules.SCHEDULED_STATES),
        "active": list(rules.ACTIVE_STATES),
        "after_induction": list(rules.AFTER_INDUCTION_STATES),
        "kinds": list(rules.WATCHED_STEP_KINDS),
        # The MRD steps that decide an HSCT indication, from the protocol files.
        "deciding": [
            f"{p.slug}/{group}/{rule.mrd_time_point}"
            for p in protocol_registry()
            for group, rule in p.hsct_indication.items()
            if rule.indicated == "mrd_threshold"
        ],
        "proposal": d["hsct_proposal_unconfirmed_days"],
        "unconfirmed": d["stratification_unconfirmed_days"],
        "referral": d["hsct_referral_missing_days"],
        "delayed": d["hsct_delayed_days"],
        "within": d["mrd_transplant_planned_within_days"],
        "window": d["mrd_before_hsct_window_days"],
        "stalled": d["course_stalled_days"],
        "stalled_maintenance": d["course_stalled_maintenance_days"],
        "stalled_transplanted": d["course_stalled_post_transplant_days"],
        "pending": d["hsct_decision_pending_days"],
        "mrd_decision": d["mrd_decision_missing_days"],
        "non_response": d["non_response_decision_days"],
        "mrd_high": d["mrd_high_before_hsct_threshold"],
        "donor": d["donor_search_stalled_days"],
        "cumulative": d["cumulative_delay_days"],
    }


def plain_sql(
    today: date, zone: str, statements: dict[str, str] = PLAIN_SQL
) -> tuple[float, set[tuple[int, str, str]]]:
    from django.db import connection

    params = plain_params(today, zone)
    keys: set[tuple[int, str, str]] = set()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        for kind, sql in statements.items():
            cursor.execute(sql, params)
            keys |= {(course_id, kind, subject) for course_id, subject in cursor.fetchall()}
    return time.perf_counter() - started, keys


def keep_floor_rows() -> None:
    """The rows an opening sweep writes (its alerts as opened, messages included), kept
    in an unlogged table for the floor to write again."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_floor_rows")
        cursor.execute(
            "CREATE UNLOGGED TABLE bench_floor_rows AS SELECT course_id, kind, subject, "
            "severity, message, caveat, condition_since FROM notifications_alert "
            "WHERE state <> 'resolved'"
        )
        cursor.execute("ANALYZE bench_floor_rows")


def insert_floor(today: date, zone: str) -> float:
    """The set-based floor of an opening sweep, committed: the due alerts selected by
    the indexed plain SQL and inserted with their texts (the very rows the sweep
    writes, from keep_floor_rows) by one INSERT ... SELECT, and their "opened" events
    by another, with no Python in between."""
    from django.db import connection, transaction

    due = " UNION ALL ".join(
        f"SELECT d.*, '{kind}' AS kind FROM ({sql}) AS d(course_id, subject)"
        for kind, sql in PLAIN_SQL_INDEXED.items()
    )
    sql = f"""
        WITH opened AS (
            INSERT INTO notifications_alert (course_id, kind, subject, severity, state, message,
                caveat, condition_since, opened_at, escalation_level, acknowledge_note,
                snooze_reason, resolution, resolve_reason)
            SELECT due.course_id, due.kind, due.subject, r.severity, 'open', r.message,
                r.caveat, r.condition_since, now(), 0, '', '', '', ''
            FROM ({due}) AS due
            JOIN bench_floor_rows r USING (course_id, kind, subject)
            RETURNING id)
        INSERT INTO notifications_alertevent (alert_id, at, action, note)
        SELECT id, now(), 'opened', '' FROM opened"""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, plain_params(today, zone))
    return time.perf_counter() - started


def truncate_alerts() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE notifications_outboundemail, notifications_alertevent, notifications_alert"
        )
        # Fresh planner statistics after the cohort grew (as autovacuum would do).
        cursor.execute("ANALYZE")


def check_uniform_thresholds() -> None:
    """The plain SQL uses one set of thresholds: make sure every protocol agrees."""
    from django.conf import settings

    from stratification.selectors import protocol_registry

    for definition in protocol_registry():
        for name, threshold in definition.alert_thresholds.items():
            if settings.REZCOURSE_ALERT_DEFAULTS.get(name) != threshold.value:
                sys.exit(
                    f"{definition.slug}: {name}={threshold.value} differs from the "
                    "settings default; the plain-SQL baseline would not be comparable"
                )


def top_up(active_target: int) -> tuple[int, int, float]:
    from courses.cohort import write_cohort
    from courses.models import ACTIVE_STATES, TreatmentCourse
    from stratification.selectors import protocol_get
    from teams.models import Team

    team, _ = Team.objects.get_or_create(slug=TEAM, defaults={"name": "Benchmark"})
    protocols = [protocol_get("all-rez-bfm-90"), protocol_get("all-rez-bfm-2002")]
    courses = TreatmentCourse.objects.filter(patient__team=team)
    started = time.perf_counter()
    while (active := courses.filter(state__in=ACTIVE_STATES).count()) < active_target:
        missing = active_target - active
        # About 70 % of generated courses are active; aim a little above.
        batch = max(1000, int(missing / 0.7) + 1)
        print(f"  generating {batch} courses ({active} active so far)...", flush=True)
        write_cohort(
            team,
            protocols,
            batch,
            seed=2026,
            as_of=date(2026, 11, 24),
            batch=2000,
            progress=lambda d, t: print(f"    {d}/{t}", flush=True) if d % 20000 == 0 else None,
        )
    return active, courses.count(), time.perf_counter() - started


def measure(active_target: int) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from notifications.models import Alert
    from notifications.services import alerts_sweep

    active, total, generated = top_up(active_target)
    now = timezone.now()
    zone = "Europe/Berlin"
    today = timezone.localtime(now).date()
    # The dashboards' state for a cohort loaded in bulk: a first sweep builds it.
    truncate_alerts()
    alerts_sweep(now)
    keep_floor_rows()
    truncate_alerts()
    floors, openings = [], []
    for _ in range(3):
        floors.append(insert_floor(today, zone))
        truncate_alerts()
    for _ in range(2):
        with CaptureQueriesContext(connection) as opening_q:
            started = time.perf_counter()
            opened = alerts_sweep(now)
            openings.append(time.perf_counter() - started)
        if len(openings) < 2:
            truncate_alerts()
    steady_times = []
    for _ in range(3):
        with CaptureQueriesContext(connection) as steady_q:
            started = time.perf_counter()
            steady_result = alerts_sweep(now)
            steady_times.append(time.perf_counter() - started)
    plain_times, indexed_times = [], []
    for _ in range(3):
        elapsed, keys = plain_sql(today, zone)
        plain_times.append(elapsed)
        elapsed, indexed_keys = plain_sql(today, zone, PLAIN_SQL_INDEXED)
        indexed_times.append(elapsed)
    open_keys = set(
        Alert.objects.exclude(state="resolved").values_list("course_id", "kind", "subject")
    )
    return {
        "active": active,
        "total": total,
        "generated_s": generated,
        "alerts": len(opened.opened),
        "opening_s": min(openings),
        "floor_s": min(floors),
        "opening_queries": len(opening_q.captured_queries),
        "steady_s": min(steady_times),
        "steady_queries": len(steady_q.captured_queries),
        "steady_unchanged": steady_result.unchanged,
        "plain_s": min(plain_times),
        "indexed_s": min(indexed_times),
        "plain_rows": len(keys),
        "load": os.getloadavg()[0],
        "same_alerts": keys == open_keys == indexed_keys,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rezcourse_bench"
        ),
    )
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("this benchmark needs PostgreSQL (--database-url postgres://...)")
    from bench.common import machine, write_section

    results = []
    for size in sorted(args.sizes):
        print(f"{size} active courses (database {args.database_url}_{size}):", flush=True)
        _setup(f"{args.database_url}_{size}")
        check_uniform_thresholds()
        r = measure(size)
        results.append(r)
        print(f"  {r}", flush=True)

    rows = [
        f"| {r['active']:,} ({r['total']:,}) | {r['alerts']:,} | {r['opening_s']:.2f} s "
        f"({r['opening_queries']} q) | {r['floor_s']:.2f} s | "
        f"{r['opening_s'] / r['floor_s']:.2f}x | {r['steady_s']:.2f} s "
        f"({r['steady_queries']} q) | {r['plain_s']:.2f} s | "
        f"{r['steady_s'] / r['plain_s']:.2f}x | {r['indexed_s']:.2f} s | "
        f"{r['steady_s'] / r['indexed_s']:.2f}x | {'yes' if r['same_alerts'] else 'NO'} | "
        f"{r['load']:.1f} |"
        for r in results
    ]
    command = shlex.join(
        [
            ".venv/bin/python",
            "-m",
            "bench.bench_sweep",
            "--database-url",
            args.database_url,
            "--sizes",
            *map(str, args.sizes),
            "--write-docs",
            "docs/benchmarks.md",
        ]
    )
    section = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}; PostgreSQL and the benchmark on the same machine, shared "
            "with other jobs (load average after each size in the last column).",
            "",
            "Synthetic cohort from `courses.cohort` (seed 2026, as of 2026-11-24), both",
            "protocols, one database per size; alerts truncated before each run so the first",
            "sweep opens them all (the dashboards' state is kept: an opening sweep refreshes",
            "the attention rows and alert counters of every course it alerts).",
            "The plain-SQL baseline is one hand-written statement per rule (fifteen since",
            "issue 22, each rule's current condition) selecting the same due alerts",
            '(course, kind, subject); "indexed SQL" is the same with the overdue-step',
            "statement in the rule's index-friendly form (the bound on due_on the partial",
            'index of open steps range-scans). "same alerts" checks that both find exactly',
            "the alerts the sweep keeps open. The cohort opens every rule's alerts but",
            "stratification_stale's (no course is re-stratified in it). The insert floor writes",
            "those alerts and their events with one INSERT ... SELECT each (the indexed",
            "SQL, joined to the very rows the sweep writes, messages included) and commits.",
            "Best of 2 for the opening sweep, of 3 for the floor, the steady sweep and the",
            "SQL.",
            "",
            "| active (all) courses | alerts | opening sweep | insert floor | opening / floor | "
            "steady sweep | plain SQL | steady / plain | indexed SQL | steady / indexed | "
            "same alerts | load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            "The query counts do not depend on the cohort size (pinned in",
            "tests/notifications/test_sweep.py). Beyond the rules, the steady sweep reads the",
            "unresolved alerts as values, the escalation candidates, the courses written",
            "since the last sweep and the snoozes that end; with nothing changed it writes",
            "nothing but its run record. The opening sweep adds the alerts resolved by hand,",
            "one INSERT for the alerts and one for their events, the recipients (no alert",
            "is loaded for e-mail unless someone's threshold reaches it), and the refresh of",
            "the dashboards' rows for the courses it alerted.",
            "",
        ]
    )
    print(section)
    if args.write_docs:
        write_section(args.write_docs, SECTION, section)
        print(f"Updated the '{SECTION[3:]}' section of {args.write_docs}")
    return 0 if all(r["same_alerts"] for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
