"""``manage.py protocols``: list, check FILE, docs."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import override_settings

from stratification.definitions import BUILTIN_DIR, builtin_registry
from stratification.docs import render

REPO = BUILTIN_DIR.parent.parent


def run(*args: str) -> str:
    out = StringIO()
    call_command("protocols", *args, stdout=out)
    return out.getvalue()


def broken_copy(tmp_path: Path) -> Path:
    data = yaml.safe_load((BUILTIN_DIR / "all-rez-bfm-90.yaml").read_text(encoding="utf-8"))
    data["rules"][3]["group"] = "Z"
    path = tmp_path / "all-rez-bfm-90.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_it_lists_slug_version_title_and_file() -> None:
    lines = run().splitlines()
    assert lines[0].split() == ["SLUG", "VERSION", "TITLE", "FILE"]
    assert lines[1].split() == [
        "all-rez-bfm-2002",
        "1.1",
        "ALL-REZ",
        "BFM",
        "2002",
        "stratification/protocols/all-rez-bfm-2002.yaml",
    ]
    assert lines[2].split()[:2] == ["all-rez-bfm-90", "1.1"]
    assert run("list") == run()


def test_it_lists_a_centres_extra_directory(tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN_DIR / "all-rez-bfm-90.yaml").read_text(encoding="utf-8"))
    data["slug"] = "centre-x"
    (tmp_path / "centre-x.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    with override_settings(REZCOURSE_PROTOCOL_DIRS=[str(tmp_path)]):
        assert "centre-x" in run()


def test_check_accepts_a_valid_file() -> None:
    output = run("check", str(BUILTIN_DIR / "all-rez-bfm-2002.yaml"))
    assert output.startswith("OK ")
    assert "all-rez-bfm-2002 version 1.1" in output


def test_check_refuses_a_broken_file_naming_file_and_field(tmp_path: Path) -> None:
    path = broken_copy(tmp_path)
    with pytest.raises(CommandError) as caught:
        run("check", str(path))
    assert caught.value.returncode == 1
    assert str(caught.value) == (
        f"{path}: rules[3].group: 'Z' is not one of the groups (PPG, A, B, C)"
    )


def test_check_refuses_a_second_file_for_a_loaded_slug(tmp_path: Path) -> None:
    data = yaml.safe_load((BUILTIN_DIR / "all-rez-bfm-90.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "all-rez-bfm-90.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(CommandError, match="slug: 'all-rez-bfm-90' is already defined by"):
        run("check", str(path))


def test_check_needs_a_file() -> None:
    with pytest.raises(CommandError, match="needs the definition FILE"):
        run("check")


def test_check_exit_codes_from_the_shell(tmp_path: Path) -> None:
    def shell(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", "protocols", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env={"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"},
        )

    ok = shell("check", "stratification/protocols/all-rez-bfm-90.yaml")
    assert (ok.returncode, ok.stdout.split()[:2]) == (
        0,
        ["OK", "stratification/protocols/all-rez-bfm-90.yaml:"],
    )
    bad = shell("check", str(broken_copy(tmp_path)))
    assert bad.returncode == 1
    assert "rules[3].group: 'Z' is not one of the groups" in bad.stderr


def test_docs_prints_or_writes_the_rendered_definitions(tmp_path: Path) -> None:
    expected = render(builtin_registry())
    assert run("docs") == expected
    target = tmp_path / "protocols.md"
    assert "Wrote" in run("docs", "--output", str(target))
    assert target.read_text(encoding="utf-8") == expected
