"""How long a newcomer waits: `make run` in a fresh clone until /api/docs/ answers.

    python3 bench/first_start.py [--repo PATH] [--runs N] [--empty-cache] [--write-docs FILE]

Each run clones the repository's committed HEAD into a temporary directory, starts
`make run PORT=<free port>` there with the embedded defaults (no DATABASE_URL,
REDIS_URL, ... from the caller's environment), polls the API docs and prints the
seconds to the first answer (cold: venv, installs, migrate, demo and start-up), then
stops it and starts it again in the same clone (warm restart). Only the standard
library is used, so it runs before any venv exists.

``--empty-cache`` points the installers' caches (uv's and pip's) at an empty folder,
so the cold figure includes downloading every wheel; without it the machine's
caches are used as they are, as a newcomer's second project would.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# The caller's service configuration must not leak into the demo: `make run` is the
# embedded setup (SQLite, filesystem broker, mail to files), wherever it is started
# from (CI exports DATABASE_URL and REDIS_URL for the test suite).
SERVICE_VARIABLES = (
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "EMAIL_URL",
    "EMAIL_HOST",
    "REZCOURSE_BASE_URL",
    "REZCOURSE_VAR_DIR",
    "REZCOURSE_REQUIRE_SERVICES",
    "DJANGO_SETTINGS_MODULE",
    "VIRTUAL_ENV",
    # make's own variables arrive through the environment too (a `make test` parent).
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "HOST",
    "PORT",
    "VENV",
    "PYTHON",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_environment(**extra: str) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if k not in SERVICE_VARIABLES}
    # A venv's bin first on PATH would make the clone's `python3` that venv's.
    if venv := os.environ.get("VIRTUAL_ENV"):
        environment["PATH"] = os.pathsep.join(
            p for p in environment.get("PATH", "").split(os.pathsep) if not p.startswith(venv)
        )
    environment.update(extra)
    return environment


def clone(repo: Path, into: Path) -> Path:
    target = into / "rezcourse"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(target)], check=True
    )
    return target


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own URL
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Running:
    """A `make run` in progress: its process (a session of its own, so the web server
    and worker can be stopped together) and its timestamped output."""

    process: subprocess.Popen[str]
    started: float
    lines: list[tuple[float, str]] = field(default_factory=list)

    def output(self) -> str:
        return "".join(line for _, line in self.lines)


@contextlib.contextmanager
def make_run(
    checkout: Path, port: int, environment: dict[str, str], *args: str
) -> Iterator[Running]:
    import threading

    started = time.monotonic()
    process = subprocess.Popen(
        ["make", "--no-print-directory", "run", f"PORT={port}", *args],
        cwd=checkout,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    running = Running(process, started)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            running.lines.append((time.monotonic() - started, line))

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        yield running
    finally:
        stop(process)
        reader.join(timeout=5)


def stop(process: subprocess.Popen[str], grace: float = 15) -> None:
    """Ctrl-C, as a person would: make's trap stops the web server and the worker."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything left in its session
    process.wait(timeout=grace)


def wait_until_answers(running: Running, url: str, timeout: float) -> float:
    """Seconds from start to the first 200 from ``url``; raises with the output if the
    run died or did not answer in time."""
    deadline = running.started + timeout
    while time.monotonic() < deadline:
        if answers(url):
            return time.monotonic() - running.started
        if running.process.poll() is not None:
            raise RuntimeError(
                f"make run exited with {running.process.returncode} before {url} answered:\n"
                + running.output()
            )
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s:\n" + running.output())


# Lines that mark the start of each step in `make run`'s output (this Makefile's and
# the one before it), for the breakdown; the installs start at once.
STEPS = (
    ("migrate", re.compile(r"migrating the database|manage\.py migrate")),
    ("demo data", re.compile(r"loading the demo|manage\.py load_demo")),
    ("start web + worker", re.compile(r"starting the web server|rezcourse: API docs at")),
)


def breakdown(running: Running, answered: float) -> list[tuple[str, float]]:
    marks = [("venv + installs", 0.0)]
    for name, pattern in STEPS:
        at = next((t for t, line in running.lines if pattern.search(line)), None)
        if at is not None and at >= marks[-1][1]:
            marks.append((name, at))
    return [
        (name, (marks[i + 1][1] if i + 1 < len(marks) else answered) - at)
        for i, (name, at) in enumerate(marks)
    ]


@dataclass
class Result:
    cold: float
    warm: float
    steps: list[tuple[str, float]]
    output: str


def measure_once(repo: Path, empty_cache: bool, timeout: float) -> Result:
    with tempfile.TemporaryDirectory(prefix="rezcourse-first-start-") as tmp:
        checkout = clone(repo, Path(tmp))
        extra: dict[str, str] = {}
        if empty_cache:
            cache = Path(tmp) / "cache"
            extra = {"UV_CACHE_DIR": str(cache / "uv"), "PIP_CACHE_DIR": str(cache / "pip")}
        environment = clean_environment(**extra)
        port = free_port()
        url = f"http://127.0.0.1:{port}/api/docs/"
        with make_run(checkout, port, environment) as running:
            cold = wait_until_answers(running, url, timeout)
        steps = breakdown(running, cold)
        output = running.output()
        port = free_port()
        url = f"http://127.0.0.1:{port}/api/docs/"
        with make_run(checkout, port, environment) as running:
            warm = wait_until_answers(running, url, timeout)
        return Result(cold, warm, steps, output)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="repository to clone")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--empty-cache", action="store_true", help="installers start empty")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--show-output", action="store_true", help="print the cold run's output")
    options = parser.parse_args(argv)

    if shutil.which("make") is None:
        print("make is not installed", file=sys.stderr)
        return 2
    results = []
    for run in range(1, options.runs + 1):
        result = measure_once(options.repo, options.empty_cache, options.timeout)
        results.append(result)
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.steps)
        print(
            f"run {run}: cold {result.cold:.1f} s, warm restart {result.warm:.1f} s"
            + (f"  ({steps})" if steps else ""),
            flush=True,
        )
        if options.show_output:
            print(result.output)
    if len(results) > 1:
        print(
            f"median of {len(results)}: cold {statistics.median(r.cold for r in results):.1f} s,"
            f" warm restart {statistics.median(r.warm for r in results):.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
