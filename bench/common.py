"""What every benchmark shares: a description of the machine, and writing its own
section of docs/benchmarks.md without touching the others."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))  # what `nproc` reports
    except AttributeError:
        cpus = os.cpu_count() or 0
    return (
        f"{platform.machine()} (`uname -m`), {cpus} CPUs (`nproc`), {cpu}, "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}"
    )


def write_section(path: Path, heading: str, section: str, title: str = "# Benchmarks") -> None:
    """Replace (or append) only the section that starts with ``heading``; a new file
    starts with ``title``."""
    text = path.read_text(encoding="utf-8") if path.exists() else f"{title}\n"
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == heading), None)
    if start is None:
        new = text.rstrip("\n") + "\n\n" + section
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "\n".join(lines[end:])
        new = "\n".join(lines[:start]) + "\n" + section + ("\n" + tail if tail else "")
    path.write_text(new.rstrip("\n") + "\n", encoding="utf-8")
