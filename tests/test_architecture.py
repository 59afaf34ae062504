"""The architecture contracts in pyproject.toml ([tool.importlinter]) hold, and each one
would catch a break: `make test` fails on a broken contract, as .ci/run does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Read from pyproject.toml, so a new app or a renamed contract cannot leave this stale.
LINTER = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
PACKAGES: list[str] = LINTER["root_packages"]
CONTRACTS = {c["id"]: c["name"] for c in LINTER["contracts"]}


def test_the_contracts_are_the_three_the_design_asks_for():
    assert set(CONTRACTS) == {"layers", "pure-engine", "wiring-only"}
    assert {"web", "reports", "notifications", "courses"} <= set(PACKAGES)


def lint_imports(cwd: Path) -> tuple[int, str]:
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert command, "lint-imports is not installed (requirements-dev.txt)"
    result = subprocess.run(
        [command, "--no-cache", "--config", "pyproject.toml"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"},
    )
    # One line per contract, however the terminal wraps it.
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_the_code_keeps_every_contract():
    status, output = lint_imports(ROOT)
    assert status == 0, output
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in output


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A copy of the code with one violation of each contract, and of no other."""
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    # layers: a lower layer reads a higher one.
    (tmp_path / "stratification" / "planted.py").write_text("import courses.models\n")
    # pure-engine: the engine reaches for Django.
    with (tmp_path / "stratification" / "engine.py").open("a") as engine:
        engine.write("\nimport django.utils.timezone\n")
    # wiring-only: a module outside the wiring imports notifications.
    (tmp_path / "config" / "planted.py").write_text("import notifications.models\n")
    return tmp_path


def test_each_contract_catches_its_violation(planted: Path):
    status, output = lint_imports(planted)
    assert status == 1, output
    for name in CONTRACTS.values():
        assert f"{name} BROKEN" in output
    assert "stratification.planted -> courses.models" in output
    assert "stratification.engine -> django" in output
    assert "config.planted -> notifications.models" in output
