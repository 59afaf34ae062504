"""``manage.py protocols``: list the loaded definitions, check a file, render the docs.

python manage.py protocols                      # slug, version, title, file
python manage.py protocols check FILE           # exit 0 "OK ..." / exit 1 + error
python manage.py protocols docs [--output PATH] # docs/protocols.md (make docs)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from stratification.definitions import (
    ProtocolDefinitionError,
    builtin_registry,
    display_path,
    load_definition,
)
from stratification.docs import render
from stratification.selectors import protocol_list, protocol_registry


class Command(BaseCommand):
    help = (
        "List the loaded protocol definitions (default), validate one definition file "
        "(check FILE), or render docs/protocols.md from the built-in definitions (docs)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", nargs="?", choices=["list", "check", "docs"], default="list")
        parser.add_argument("file", nargs="?", help="check: the definition file to validate")
        parser.add_argument("--output", "-o", help="docs: write to this file instead of stdout")

    def handle(
        self, *args: Any, action: str, file: str | None, output: str | None, **options: Any
    ) -> None:
        if action == "check":
            self.check_file(file)
        elif action == "docs":
            self.docs(output)
        else:
            self.list()

    def list(self) -> None:
        rows = [("SLUG", "VERSION", "TITLE", "FILE")] + [
            (d.slug, d.version, d.title, display_path(d.path)) for d in protocol_list()
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        for row in rows:
            cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
            self.stdout.write("  ".join([*cells, row[3]]))

    def check_file(self, file: str | None) -> None:
        if not file:
            raise CommandError("check needs the definition FILE to validate", returncode=1)
        path = Path(file)
        try:
            definition = load_definition(path)
        except ProtocolDefinitionError as error:
            raise CommandError(str(error), returncode=1) from error
        # The same refusal start-up would give: a slug is defined once across all dirs.
        loaded = protocol_registry().definitions.get(definition.slug)
        if loaded is not None and loaded.path.resolve() != path.resolve():
            raise CommandError(
                str(
                    ProtocolDefinitionError(
                        path,
                        "slug",
                        f"{definition.slug!r} is already defined by {display_path(loaded.path)}",
                    )
                ),
                returncode=1,
            )
        self.stdout.write(
            f"OK {display_path(path)}: {definition.slug} version {definition.version} "
            f"({definition.title}): {len(definition.rules)} rules, "
            f"{len(definition.groups)} groups, {len(definition.schedule_templates)} schedule "
            "templates"
        )

    def docs(self, output: str | None) -> None:
        # Built-in definitions only: the committed docs must not depend on a centre's
        # REZCOURSE_PROTOCOL_DIRS.
        text = render(builtin_registry())
        if output is None:
            self.stdout.write(text, ending="")
            return
        Path(output).write_text(text, encoding="utf-8")
        self.stdout.write(f"Wrote {output}")
