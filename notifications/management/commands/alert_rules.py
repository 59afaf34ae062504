from pathlib import Path

from django.core.management.base import BaseCommand

from notifications.rules_doc import render


class Command(BaseCommand):
    help = "Print (or write with --output) the alert rules and thresholds as Markdown."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--output", help="file to write instead of stdout")

    def handle(self, *args: object, output: str | None, **options: object) -> None:
        text = render()
        if output:
            Path(output).write_text(text)
            self.stdout.write(f"wrote {output}")
        else:
            self.stdout.write(text, ending="")
