"""A management command that prints (or writes) one generated document."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from django.core.management.base import BaseCommand


class GeneratedDocCommand(BaseCommand):
    """Subclasses set ``help`` and ``render`` (a function returning the Markdown)."""

    render: Callable[[], str]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", help="file to write instead of stdout")

    def handle(self, *args: object, output: str | None, **options: object) -> None:
        text = type(self).render()
        if output:
            Path(output).write_text(text)
            self.stdout.write(f"wrote {output}")
        else:
            self.stdout.write(text, ending="")
