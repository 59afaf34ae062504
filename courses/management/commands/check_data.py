"""``manage.py check_data``: report existing rows that break a plausibility bound.

It reads and reports; it changes nothing (a correction is a clinician's, through the
services, with its audit entry). Exit status 1 when it finds anything, so a scheduled
run or a deployment step can alert on it.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from courses.integrity import find


class Command(BaseCommand):
    help = (
        "Report existing rows whose clinical values break a plausibility bound "
        "(courses/bounds.py); changes nothing; exits 1 when any is found."
    )

    def handle(self, *args: object, **options: object) -> None:
        now = timezone.now()  # read once: every team's today is judged at this moment

        def progress(model: str, done: int, total: int) -> None:
            self.stderr.write(f"{model}: {done}/{total} rows checked")

        count = 0
        for finding in find(now, progress):
            count += 1
            self.stdout.write(finding.line())
        if count:
            raise CommandError(f"{count} value(s) out of bounds.", returncode=1)
        self.stdout.write("No value out of bounds.")
