"""Load test: the worklist and summary endpoints at network scale, in the shapes users
have, each beside its limit baseline and the old design, measured in the same run.

    .venv/bin/python -m bench.bench_dashboard \\
        --database-url postgres://postgres@127.0.0.1:5432/rezcourse_bench \\
        --port 8765 --write-docs docs/benchmarks.md

Needs PostgreSQL, gunicorn (requirements.txt) and wrk (`apt-get install wrk`).

Data: the cohort of bench_sweep (database ``<url>_<active>``, topped up to that many
active courses in one team and swept), and a copy of it spread over 200 teams
(``<url>_<active>_teams200``, made once from the first with CREATE DATABASE ...
TEMPLATE, its patients dealt round-robin to the teams). Both are kept between runs.

Shapes, one user each (a real API token):

* ``one team``: a coordinator of the single team holding every course;
* ``member of 1 of 200``: a clinician of one of the 200 teams;
* ``network (200 teams)``: a coordinator who belongs to all 200.

For each shape and endpoint wrk drives, one after the other for ``--duration``
seconds each: the endpoint, its limit baseline (the same page straight from the
precomputed tables with ``.values()``, bench/urls.py) and the old design's query
(bench/legacy.py). The report gives requests/s, p50 and p95 for each, the endpoint's
share of its limit (target >= 0.5) and its gain over the old design (target >= 10).
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Dashboard endpoints"
TEAMS = 200

ENDPOINTS = {
    "worklist": ("/api/v1/dashboard/worklist/", "/bench/worklist-limit/", "/bench/worklist-old/"),
    "summary": ("/api/v1/dashboard/summary/", "/bench/summary-limit/", "/bench/summary-old/"),
}


def wrk(url: str, token: str, duration: int, connections: int) -> dict[str, float]:
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "60s",
        "-s",
        str(ROOT / "bench" / "wrk_report.lua"),
        "-H",
        f"Authorization: Token {token}",
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"^RESULT (.*)$", output, re.M)
    if not match:
        sys.exit(f"wrk printed no result:\n{output}")
    return {k: float(v) for k, v in (item.split("=") for item in match.group(1).split())}


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    sys.exit(f"gunicorn did not answer {url} within {seconds:g} s")


def prepare_one_team(database_url: str, active_target: int) -> dict:
    """The single-team cohort, swept, with its coordinator's token."""
    from bench.bench_sweep import _setup, top_up

    _setup(database_url)
    from django.db import connection
    from django.utils import timezone

    from notifications.models import UNRESOLVED, Alert
    from notifications.services import alerts_sweep
    from teams.models import Role, Team

    active, total, _ = top_up(active_target)
    if not Alert.objects.filter(state__in=UNRESOLVED).exists():
        print("sweeping the cohort once...", flush=True)
        alerts_sweep(timezone.now())
    rebuild_if_needed()
    with connection.cursor() as cursor:
        # Fresh planner statistics after the bulk loads, as autovacuum would have them.
        cursor.execute("ANALYZE")
    team = Team.objects.get(slug="bench")
    return {
        "active": active,
        "total": total,
        "tokens": {"one team": member_token("bench.coordinator", [team], Role.COORDINATOR)},
        **figures(),
    }


def rebuild_if_needed() -> None:
    """A cohort loaded in bulk (the generator writes rows, not through the services)
    is brought into the dashboards by a sweep; one that predates them, by a rebuild."""
    from django.utils import timezone

    from notifications.models import CourseAttention, SummaryCounter
    from notifications.services import dashboards_rebuild

    if CourseAttention.objects.exists() and SummaryCounter.objects.exists():
        return
    print("building the dashboards' state...", flush=True)
    dashboards_rebuild(timezone.now())


def member_token(username: str, teams: list, role: str) -> str:
    from django.contrib.auth import get_user_model

    from teams.models import Membership
    from teams.services import token_get_or_create

    user, _ = get_user_model().objects.get_or_create(username=username)
    have = set(Membership.objects.filter(user=user).values_list("team_id", flat=True))
    Membership.objects.bulk_create(
        [Membership(user=user, team=t, role=role) for t in teams if t.pk not in have]
    )
    return token_get_or_create(user).key


def figures() -> dict:
    from notifications.models import UNRESOLVED, Alert, CourseAttention

    return {
        "open_alerts": Alert.objects.filter(state__in=UNRESOLVED).count(),
        "attention": CourseAttention.objects.count(),
    }


def prepare_many_teams(database_url: str, source_url: str) -> dict:
    """The same cohort over 200 teams (a copy, made once), a member of one of them and
    a coordinator of all."""
    import psycopg

    base, _, name = database_url.rpartition("/")
    source = source_url.rpartition("/")[2]
    from django.db import connections

    connections.close_all()
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            print(f"copying {source} to {name}...", flush=True)
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    from bench.bench_sweep import _setup

    _setup(database_url)
    from django.db import connection
    from django.utils import timezone

    from courses.models import Patient
    from notifications.services import dashboards_rebuild
    from teams.models import Role, Team

    teams = list(Team.objects.filter(slug__startswith="net-").order_by("slug"))
    if len(teams) < TEAMS:
        print(f"spreading the cohort over {TEAMS} teams...", flush=True)
        Team.objects.bulk_create(
            [Team(slug=f"net-{i:03d}", name=f"Network centre {i:03d}") for i in range(TEAMS)],
            ignore_conflicts=True,
        )
        teams = list(Team.objects.filter(slug__startswith="net-").order_by("slug"))
        ids = [t.pk for t in teams]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {Patient._meta.db_table} SET team_id = (%s::bigint[])[1 + id %% %s]",
                [ids, len(ids)],
            )
        dashboards_rebuild(timezone.now())  # every course changed team
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    return {
        "tokens": {
            "member of 1 of 200": member_token("bench.member", teams[:1], Role.CLINICIAN),
            "network (200 teams)": member_token("bench.network", teams, Role.COORDINATOR),
        },
        **figures(),
    }


def serve(database_url: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    return subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(workers),
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )


def measure(database_url: str, tokens: dict, args: argparse.Namespace) -> list[dict]:
    server = serve(database_url, args.port, args.workers)
    base = f"http://127.0.0.1:{args.port}"
    results = []
    try:
        wait_for(f"{base}/healthz")
        for shape, token in tokens.items():
            for endpoint in args.endpoints:
                paths = ENDPOINTS[endpoint]
                for path in paths:  # warm the workers and the database cache
                    wrk(base + path, token, 2, 1)
                api, limit, old = (
                    wrk(base + path, token, args.duration, args.connections) for path in paths
                )
                load = os.getloadavg()[0]
                results.append(
                    {"shape": shape, "endpoint": endpoint, "api": api, "limit": limit, "old": old}
                    | {"load": load}
                )
                print(shape, endpoint, api, limit, old, f"load {load:.1f}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rezcourse_bench"
        ),
        help="the base name; the cohorts live in <url>_<active> and <url>_<active>_teams200",
    )
    parser.add_argument("--port", type=int, default=8765, help="gunicorn's loopback port")
    parser.add_argument("--active", type=int, default=100_000, help="active courses")
    parser.add_argument("--duration", type=int, default=15, help="seconds per measurement")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--endpoints", nargs="+", default=list(ENDPOINTS), choices=ENDPOINTS)
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    if not args.database_url.startswith(("postgres://", "postgresql://")):
        parser.error("this benchmark needs PostgreSQL (--database-url postgres://...)")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"

    one_url = f"{args.database_url}_{args.active}"
    many_url = f"{one_url}_teams{TEAMS}"
    one = prepare_one_team(one_url, args.active)
    many = prepare_many_teams(many_url, one_url)
    started = time.monotonic()
    results = measure(one_url, one["tokens"], args)
    results += measure(many_url, many["tokens"], args)
    minutes = (time.monotonic() - started) / 60

    from bench.common import machine, write_section

    section = report(args, one, many, results, minutes, machine())
    print(section)
    if args.write_docs:
        write_section(args.write_docs, SECTION, section)
        print(f"Updated the '{SECTION[3:]}' section of {args.write_docs}")
    errors = sum(r[k]["errors"] for r in results for k in ("api", "limit", "old"))
    return 0 if errors == 0 else 1


def report(args, one: dict, many: dict, results: list[dict], minutes: float, machine: str) -> str:  # noqa: ANN001
    command = shlex.join(
        [
            ".venv/bin/python",
            "-m",
            "bench.bench_dashboard",
            "--database-url",
            args.database_url,
            "--port",
            str(args.port),
            "--active",
            str(args.active),
            "--duration",
            str(args.duration),
            "--connections",
            str(args.connections),
            "--write-docs",
            "docs/benchmarks.md",
        ]
    )

    def cell(r: dict) -> str:
        return f"{r['rps']:.1f} | {r['p50_ms']:.0f} ms | {r['p95_ms']:.0f} ms"

    rows = [
        f"| {r['shape']} | `{r['endpoint']}` | {cell(r['api'])} | {cell(r['limit'])} | "
        f"{r['api']['rps'] / r['limit']['rps']:.2f}x | {cell(r['old'])} | "
        f"{r['api']['rps'] / r['old']['rps']:.1f}x | {r['load']:.1f} |"
        for r in results
    ]
    errors = sum(r[k]["errors"] for r in results for k in ("api", "limit", "old"))
    return "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine}; PostgreSQL, gunicorn ({args.workers} sync workers) and wrk "
            "(1 thread, a second process) on the same machine, over loopback; other jobs "
            "shared it (the load average after each row is in the last column).",
            "",
            f"Data: {one['active']:,} active courses ({one['total']:,} in all), "
            f"{one['open_alerts']:,} open alerts, {one['attention']:,} courses needing "
            f"attention; once in one team, and once spread over {TEAMS} teams (a copy). "
            f"{args.connections} connections for {args.duration} s per cell after a 2 s "
            f"warm-up; the whole run took {minutes:.1f} min.",
            "",
            "Each row measures, one after the other in the same run: the endpoint; its "
            "*limit*, a plain Django view returning the same first page (or the summary's "
            "counters) straight from the precomputed tables with `.values()` "
            "(bench/urls.py); and the *old* design, the queries before the precomputed "
            "state (bench/legacy.py). All three with the same token authentication.",
            "",
            "| shape | endpoint | req/s | p50 | p95 | limit req/s | p50 | p95 | "
            "endpoint / limit | old req/s | p50 | p95 | endpoint / old | load |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Errors (non-2xx, timeouts) during the runs: {errors:.0f}.",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
