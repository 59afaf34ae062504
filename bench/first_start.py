"""How long a newcomer waits: `make run` in a fresh clone until /api/docs/ answers.

    python3 bench/first_start.py [--runs N] [--empty-cache] [--rev REVISION]

Each run clones the repository (with its uncommitted changes, or the given revision)
into a temporary directory, starts `make run PORT=<free port>` there with the embedded
defaults (no DATABASE_URL, REDIS_URL, ... from the caller's environment), polls the API
docs and prints the seconds until it is ready: the docs answer and make run's banner is
out (cold: venv, installs, migrate, demo and start-up). Then it stops it and starts it
again in the same clone (warm restart).
Only the standard library is used, so it runs before any venv exists.

``--empty-cache`` points the installers' caches (uv's and pip's) at an empty folder,
so the cold figure includes downloading every wheel; without it the machine's
caches are used as they are, as a newcomer's second project would.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
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


# What a copy of a source tree without git leaves out: state, caches, the venv.
NOT_SOURCE = (".venv", "var", "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis")


def clone(repo: Path, into: Path, rev: str | None = None) -> Path:
    """A fresh clone of ``repo`` at ``rev``, or else with its uncommitted changes to
    tracked files: what the next commit would hold (untracked files stay out, as they
    would from a clone). A source tree that is not a git checkout is copied instead."""
    target = into / "rezcourse"
    if not (repo / ".git").exists():
        if rev:
            raise ValueError(f"{repo} is not a git checkout: no revision {rev} to clone")
        shutil.copytree(repo, target, ignore=shutil.ignore_patterns(*NOT_SOURCE))
        return target
    git = ["git", "-C", str(repo)]
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(repo), str(target)], check=True
    )
    if rev:
        subprocess.run(["git", "-C", str(target), "checkout", "--quiet", rev], check=True)
        return target
    # `stash create` records the working tree as a commit without touching it.
    changes = subprocess.run(
        [*git, "stash", "create"], capture_output=True, text=True, check=True
    ).stdout.strip()
    if changes:
        archive = subprocess.run([*git, "archive", changes], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(target, filter="data")
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
    """SIGTERM to the whole session: make's trap stops the web server and the worker (not
    SIGINT, which a shell leaves ignored for the jobs it starts in the background)."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=grace)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # anything left in its session
    process.wait(timeout=grace)


# `make run`'s banner, printed once the demo is loaded and the web server is up (or, in
# the Makefile before it, just before the server started).
READY = re.compile(r"^(rezcourse is running:|rezcourse: API docs at)", re.M)


def wait_until_ready(running: Running, url: str, timeout: float) -> tuple[float, float]:
    """Seconds from start until ``url`` first answered, and until make run was ready
    (its banner printed, and the docs answering); raises with the output if the run
    died or was not ready in time."""
    deadline = running.started + timeout
    docs = None
    while time.monotonic() < deadline:
        if docs is None and answers(url):
            docs = time.monotonic() - running.started
        if docs is not None and READY.search(running.output()):
            return docs, time.monotonic() - running.started
        if running.process.poll() is not None:
            raise RuntimeError(
                f"make run exited with {running.process.returncode} before it was ready:\n"
                + running.output()
            )
        time.sleep(0.1)
    raise RuntimeError(f"make run was not ready within {timeout:.0f} s:\n" + running.output())


# Lines that mark the start of each step in `make run`'s output (this Makefile's and
# the one before it), for the breakdown; the installs start at once.
STEPS = (
    ("migrate", re.compile(r"migrating the database|manage\.py migrate")),
    ("demo data", re.compile(r"loading the demo|manage\.py load_demo")),
    ("start web + worker", re.compile(r"starting the (web server|worker)|rezcourse: API docs at")),
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
class Start:
    docs: float  # seconds until the docs first answered
    seconds: float  # until make run was ready: its banner printed, the docs answering
    cpu: float  # user + system seconds of the whole run, stop included
    steps: list[tuple[str, float]]
    output: str


def timed_start(checkout: Path, environment: dict[str, str], timeout: float) -> Start:
    port = free_port()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with make_run(checkout, port, environment) as running:
        docs, seconds = wait_until_ready(running, f"http://127.0.0.1:{port}/api/docs/", timeout)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Start(docs, seconds, cpu, breakdown(running, seconds), running.output())


def measure_once(
    repo: Path, rev: str | None, empty_cache: bool, timeout: float
) -> tuple[Start, Start]:
    """(cold start in a fresh clone, warm restart in the same clone)."""
    with tempfile.TemporaryDirectory(prefix="rezcourse-first-start-") as tmp:
        checkout = clone(repo, Path(tmp), rev)
        extra: dict[str, str] = {}
        if empty_cache:
            cache = Path(tmp) / "cache"
            extra = {"UV_CACHE_DIR": str(cache / "uv"), "PIP_CACHE_DIR": str(cache / "pip")}
        environment = clean_environment(**extra)
        cold = timed_start(checkout, environment, timeout)
        return cold, timed_start(checkout, environment, timeout)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="repository to clone")
    parser.add_argument("--rev", help="a revision to measure instead of the working tree")
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
        load = os.getloadavg()[0]
        cold, warm = measure_once(options.repo, options.rev, options.empty_cache, options.timeout)
        results.append((cold, warm))
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cold.steps)
        print(
            f"run {run}: cold {cold.seconds:.1f} s (docs {cold.docs:.1f} s, {cold.cpu:.1f} s CPU),"
            f" warm restart {warm.seconds:.1f} s (docs {warm.docs:.1f} s, {warm.cpu:.1f} s CPU);"
            f" load average before {load:.1f}"
            f"\n  cold: {steps}"
            f"\n  warm: {', '.join(f'{n} {t:.1f} s' for n, t in warm.steps)}",
            flush=True,
        )
        if options.show_output:
            print(cold.output)
    if len(results) > 1:
        print(
            f"median of {len(results)}: "
            f"cold {statistics.median(c.seconds for c, _ in results):.1f} s, "
            f"warm restart {statistics.median(w.seconds for _, w in results):.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
