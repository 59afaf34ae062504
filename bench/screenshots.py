"""Screenshots of the web app's main pages from the demo data (``make screenshots``).

Loads the demo (``manage.py load_demo``) into a temporary SQLite database, starts
``runserver`` on a free local port, signs in as the demo coordinator with the same
browser harness as the browser tests (bench/browser.py: Debian's Chromium through
Playwright) and saves one PNG per page into docs/screenshots/. It also walks the
registration once (patient, relapse, preview), so the preview page and the worklist's
"needs review" section have something to show. Nothing outside the temporary folder is
touched but the output folder.

    python -m bench.screenshots [--output docs/screenshots] [--courses N]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.browser import VIEWPORT, chromium_problem, launched, sign_in

ROOT = Path(__file__).resolve().parent.parent
USER, PASSWORD = "coord.north", "demo-coord.north"  # made by load_demo


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _environment(folder: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "CELERY_", "EMAIL_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DJANGO_DEBUG="0",
        REZCOURSE_VAR_DIR=str(folder),
        DATABASE_URL=f"sqlite:///{folder / 'screenshots.sqlite3'}",
        LOG_LEVEL="WARNING",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def _wait_until_up(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server stopped (exit code {server.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    raise RuntimeError(f"the server did not answer at {url} within {seconds} s")


def _shoot(page: Any, output: Path, name: str) -> None:
    page.wait_for_load_state("networkidle")
    path = output / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    print(f"  {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")


def _register(page: Any) -> None:
    """The registration flow up to the stratification preview (then left for review)."""
    page.get_by_role("link", name="Register a patient").click()
    page.get_by_label("Reference").fill("NEW-2026-0101")
    page.get_by_label("Birth year").fill("2016")
    page.get_by_label("Sex").select_option("female")
    page.get_by_label("Immunophenotype").select_option("B")
    page.get_by_label("Initial diagnosis date").fill("2022-02-14")
    page.get_by_label("Front-line protocol").fill("AIEOP-BFM ALL 2017")
    page.get_by_label("Front-line therapy end date").fill("2024-03-01")
    page.get_by_role("button", name="Save and record the relapse").click()
    page.get_by_label("Relapse date").fill("2026-10-28")
    page.get_by_label("Combined").check()
    page.get_by_label("CNS").check()
    page.get_by_label("Marrow blasts (%)").fill("38")
    page.get_by_role("button", name="Save and choose the protocol").click()
    page.get_by_label("Protocol").select_option("all-rez-bfm-2002")
    page.locator("#proposal table").wait_for()


def _rich_course(page: Any) -> str:
    """A course from "needs attention" with some history to show: one in HSCT work-up
    or later if there is one, else the most urgent."""
    rows = page.locator("section", has=page.locator("#attention-title")).locator("tbody tr")
    for state in ("HSCT work-up", "Post-remission chemotherapy", "Transplanted"):
        row = rows.filter(has_text=state)
        if row.count():
            return row.first.locator("a.ref").get_attribute("href")
    return rows.first.locator("a.ref").get_attribute("href")


def take(output: Path, courses: int | None) -> None:
    problem = chromium_problem()
    if problem:
        raise SystemExit(f"screenshots: {problem}")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="rezcourse-screenshots-") as tmp:
        folder = Path(tmp)
        env = _environment(folder)
        print("Loading the demo into a temporary database ...")
        _manage(env, "migrate", "--noinput")
        _manage(env, "load_demo", *(["--courses", str(courses)] if courses is not None else []))
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_until_up(f"{base}/accounts/login/", server)
            print(f"Capturing from {base} into {output}:")
            with launched() as browser:
                context = browser.new_context(
                    viewport=VIEWPORT, locale="en-GB", timezone_id="Europe/Berlin"
                )
                page = context.new_page()
                page.goto(f"{base}/accounts/login/")
                _shoot(page, output, "sign-in")
                sign_in(page, base, USER, PASSWORD)
                _register(page)
                _shoot(page, output, "register-preview")
                page.get_by_role("button", name="Open the course, leave it for review").click()
                page.goto(f"{base}/")
                _shoot(page, output, "worklist")
                page.goto(base + _rich_course(page))
                _shoot(page, output, "course")
                page.get_by_role("link", name="a block").click()
                _shoot(page, output, "record-block")
                for name, path in (("calendar", "/calendar/"), ("outcomes", "/outcomes/")):
                    page.goto(base + path)
                    _shoot(page, output, name)
                tablet = browser.new_context(
                    viewport={"width": 768, "height": 1024},
                    locale="en-GB",
                    timezone_id="Europe/Berlin",
                    storage_state=context.storage_state(),
                )
                portrait = tablet.new_page()
                portrait.goto(f"{base}/")
                _shoot(portrait, output, "worklist-tablet-portrait")
                tablet.close()
                context.close()
        finally:
            server.terminate()
            server.wait(timeout=20)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--courses", type=int, default=None, help="demo scenarios per team (default: all)"
    )
    args = parser.parse_args(argv)
    take(args.output.resolve(), args.courses)


if __name__ == "__main__":
    main()
