"""Load test: the worklist and summary endpoints against a 100k-course cohort.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/rezcourse_bench \\
        .venv/bin/python -m bench.bench_dashboard --write-docs docs/benchmarks.md

Needs PostgreSQL, gunicorn (requirements.txt) and wrk (`apt-get install wrk`).
It reuses (or tops up) the cohort of bench_sweep, in the database
``<DATABASE_URL>_<active>``, sweeps it once if it has no alerts, and serves the
project with gunicorn on a loopback port; bench/settings.py adds baseline views
that return the same rows straight from ``.values()``. wrk drives each endpoint
from a second process for a bounded time; the report gives requests/s and p50/p95
latency for the endpoint and its baseline, and their ratio.
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
PORT = 8765


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rezcourse_bench"
        ),
    )
    parser.add_argument("--active", type=int, default=100_000, help="active courses")
    parser.add_argument("--duration", type=int, default=15, help="seconds per endpoint")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--write-docs", type=Path)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    from bench.bench_sweep import _setup, top_up

    database_url = f"{args.database_url}_{args.active}"
    _setup(database_url)
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from bench.common import machine, write_section
    from notifications.models import UNRESOLVED, Alert
    from notifications.services import alerts_sweep
    from teams.models import Membership, Role, Team
    from teams.services import token_get_or_create

    active, total, _ = top_up(args.active)
    if not Alert.objects.filter(state__in=UNRESOLVED).exists():
        print("sweeping the cohort once...", flush=True)
        alerts_sweep(timezone.now())
    user, _ = get_user_model().objects.get_or_create(username="bench.coordinator")
    Membership.objects.get_or_create(
        user=user, team=Team.objects.get(slug="bench"), defaults={"role": Role.COORDINATOR}
    )
    token = token_get_or_create(user).key
    from django.db import connection

    with connection.cursor() as cursor:
        # Fresh planner statistics after the bulk loads, as autovacuum would have them.
        cursor.execute("ANALYZE")
    open_alerts = Alert.objects.filter(state__in=UNRESOLVED).count()

    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
    }
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--workers",
            str(args.workers),
            "--timeout",
            "120",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
    )
    base = f"http://127.0.0.1:{PORT}"
    endpoints = [
        ("worklist", "/api/v1/dashboard/worklist/", "/bench/worklist-values/"),
        ("summary", "/api/v1/dashboard/summary/", "/bench/summary-values/"),
    ]
    results = []
    try:
        wait_for(f"{base}/healthz")
        for name, url, baseline in endpoints:
            for path in (url, baseline):  # warm the workers and the database cache
                wrk(base + path, token, 2, 1)
            api = wrk(base + url, token, args.duration, args.connections)
            plain = wrk(base + baseline, token, args.duration, args.connections)
            results.append((name, url, api, plain))
            print(name, api, plain, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)

    errors = sum(r[2]["errors"] + r[3]["errors"] for r in results)
    command = (
        f"DATABASE_URL={args.database_url} .venv/bin/python -m bench.bench_dashboard "
        + shlex.join(
            [
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
    )
    rows = [
        f"| `{url}` | {api['rps']:.1f} | {api['p50_ms']:.0f} ms | {api['p95_ms']:.0f} ms | "
        f"{plain['rps']:.1f} | {plain['p50_ms']:.0f} ms | {plain['p95_ms']:.0f} ms | "
        f"{plain['rps'] / api['rps']:.2f}x |"
        for name, url, api, plain in results
    ]
    section = "\n".join(
        [
            SECTION,
            "",
            f"Command: `{command}`",
            "",
            f"Machine: {machine()}; PostgreSQL, gunicorn ({args.workers} sync workers) and wrk "
            "(1 thread, a second process) on the same machine, over loopback.",
            "",
            f"Data: {active:,} active courses ({total:,} in all) in one team, {open_alerts:,} "
            f"open alerts; {args.connections} connections for {args.duration} s per row after "
            "a 2 s warm-up. Baseline: a plain Django view returning the same rows from "
            "`.values()` (bench/urls.py), with the same token authentication.",
            "",
            "| endpoint | req/s | p50 | p95 | baseline req/s | p50 | p95 | baseline / endpoint |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Errors (non-2xx, timeouts) during the runs: {errors:.0f}.",
            "",
            "The worklist costs about twice its baseline because it also counts the matching",
            "courses for pagination (a second pass over the grouped alerts); the summary's",
            "time is its three delay percentiles over every course, the same SQL in both.",
            "",
        ]
    )
    print(section)
    if args.write_docs:
        write_section(args.write_docs, SECTION, section)
        print(f"Updated the '{SECTION[3:]}' section of {args.write_docs}")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
