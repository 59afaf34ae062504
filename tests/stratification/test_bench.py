"""The engine benchmark runs end to end and edits only its own docs section."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import bench_engine


def test_bench_runs_and_replaces_only_its_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "benchmarks.md"
    docs.write_text(
        "# Benchmarks\n\n## Alert sweep\n\nkeep me\n\n## Stratification engine\n\nold figures\n"
        "\n## Outbox\n\nkeep me too\n",
        encoding="utf-8",
    )
    assert bench_engine.main(["--rows", "400", "--repeat", "1", "--write-docs", str(docs)]) == 0
    text = docs.read_text(encoding="utf-8")
    assert "old figures" not in text
    assert text.count("## Stratification engine") == 1
    assert "keep me\n" in text and "keep me too" in text
    assert "400 seeded synthetic rows" in text
    assert "`uname -m`" in capsys.readouterr().out


def test_bench_creates_the_docs_file_when_absent(tmp_path: Path) -> None:
    docs = tmp_path / "benchmarks.md"
    bench_engine.main(["--rows", "50", "--repeat", "1", "--write-docs", str(docs)])
    assert docs.read_text(encoding="utf-8").startswith("# Benchmarks\n\n## Stratification engine")
