"""`make run PORT=<free port>` in a fresh clone, as a newcomer runs it.

The clone (a copy, where the source tree is not a git checkout) builds its own .venv
exactly as a newcomer's does (uv, from this machine's cache, which the suite's own
venv has just filled: a few seconds), so the installer path is tested too; the whole
start is bounded by START_TIMEOUT. The child gets the embedded defaults, not the
suite's DATABASE_URL / REDIS_URL (bench.first_start.clean_environment), and two
documented settings that make the demo mail within seconds whatever the demo cohort
holds: escalate after 0 hours, sweep every 2 s.
"""

from __future__ import annotations

import email
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

from bench import first_start
from tests.conftest import REQUIRE_SERVICES

pytestmark = pytest.mark.integration

START_TIMEOUT = 120  # seconds from `make run` to the docs answering, installs included
MAIL_TIMEOUT = 60  # seconds from then to the first alert e-mail


@dataclass
class Demo:
    checkout: Path
    port: int
    running: first_start.Running

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _missing_tool() -> str | None:
    tools = ["make", "python3"] + (["git"] if (first_start.REPO / ".git").exists() else [])
    return next((f"{tool} is not installed" for tool in tools if not shutil.which(tool)), None)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if problem := _missing_tool():
        if REQUIRE_SERVICES:
            pytest.fail(f"make run in a fresh clone: {problem}")
        pytest.skip(problem)
    checkout = first_start.clone(first_start.REPO, tmp_path_factory.mktemp("first-start"))
    port = first_start.free_port()
    environment = first_start.clean_environment(
        REZCOURSE_ALERT_ESCALATION_HOURS="0", REZCOURSE_ALERT_SWEEP_SECONDS="2"
    )
    with first_start.make_run(checkout, port, environment) as running:
        first_start.wait_until_ready(running, f"http://127.0.0.1:{port}/api/docs/", START_TIMEOUT)
        yield Demo(checkout, port, running)


def _mails(folder: Path) -> list[Message]:
    if not folder.is_dir():
        return []
    messages = []
    # The file backend appends each message to one file per connection, separated by a
    # line of dashes.
    for path in sorted(folder.glob("*.log")):
        for chunk in re.split(rb"^-{79}$", path.read_bytes(), flags=re.M):
            if chunk.strip():
                messages.append(email.message_from_bytes(chunk.strip()))
    return messages


def _text(message: Message) -> str:
    if message.is_multipart():
        return "\n".join(_text(part) for part in message.get_payload())
    return message.get_payload(decode=True).decode(message.get_content_charset() or "utf-8")


def test_the_api_docs_answer_on_the_port_given_to_make_run(demo: Demo) -> None:
    with urllib.request.urlopen(f"{demo.url}/api/docs/", timeout=10) as response:
        assert response.status == 200
        assert "swagger" in response.read().decode().lower()


def test_an_alert_email_under_var_mail_links_to_that_port(demo: Demo) -> None:
    folder = demo.checkout / "var" / "mail"
    deadline = time.monotonic() + MAIL_TIMEOUT
    while not (messages := _mails(folder)) and time.monotonic() < deadline:
        if demo.running.process.poll() is not None:
            pytest.fail("make run stopped:\n" + demo.running.output())
        time.sleep(0.5)
    assert messages, (
        f"no e-mail under {folder} within {MAIL_TIMEOUT} s of the docs answering; the demo "
        "needs an open medium or high alert for its escalation to be mailed.\n"
        + demo.running.output()
    )
    bodies = [_text(m) for m in messages]
    links = [link for body in bodies for link in re.findall(r"https?://[^\s\"<>]+", body)]
    assert links, bodies[0]
    assert all(link.startswith(f"{demo.url}/") for link in links), sorted(set(links))


def test_the_output_says_where_things_are_without_warnings_or_noise(demo: Demo) -> None:
    output = demo.running.output()
    assert f"API docs  {demo.url}/api/docs/" in output
    assert "var/mail/" in output
    assert f"their links point to {demo.url}" in output
    for user, role in [("coord.north", "coordinator"), ("clin.north", "clinician")]:
        assert re.search(
            rf"^\s+{re.escape(user)}\s+north\s+{role}\s+demo-\S+\s+\w{{40}}$", output, re.M
        )
    assert "superuser privileges" not in output
    assert "No hostname was supplied" not in output
    assert "Traceback" not in output
    # Each step a line or two, not pages (pip's and migrate's lines used to fill a screen).
    before_ready = output.split("rezcourse is running:")[0]
    assert len(before_ready.splitlines()) < 40, before_ready
