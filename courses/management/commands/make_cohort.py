import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from courses.cohort import write_cohort
from courses.models import Patient
from courses.selectors import protocol_for
from teams.models import Team


class Command(BaseCommand):
    help = (
        "Generate a seeded, reproducible synthetic cohort of treatment courses in every "
        "state and risk group (some steps late) for a team."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--courses", type=int, required=True)
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument(
            "--protocol",
            action="append",
            dest="protocols",
            help="protocol slug (repeatable); default: both built-ins",
        )
        parser.add_argument(
            "--as-of",
            type=date.fromisoformat,
            default=None,
            help="the cohort's 'today' (default: today)",
        )
        parser.add_argument("--batch", type=int, default=1000)
        parser.add_argument(
            "--top-up",
            action="store_true",
            help="only add what the team lacks to have --courses synthetic courses "
            "(for the demo: running it again adds nothing)",
        )

    def handle(self, *args: object, **o: object) -> None:
        if o["courses"] < 0:
            raise CommandError("--courses must be 0 or more.")
        try:
            team = Team.objects.get(slug=o["team"])
        except Team.DoesNotExist as exc:
            raise CommandError(f"No team with slug '{o['team']}'.") from exc
        slugs = o["protocols"] or ["all-rez-bfm-90", "all-rez-bfm-2002"]
        try:
            protocols = [protocol_for(s) for s in slugs]
        except KeyError as exc:
            raise CommandError(f"Unknown protocol {exc}.") from exc
        as_of = o["as_of"] or timezone.localdate()
        wanted = o["courses"]
        if o["top_up"]:
            have = Patient.objects.filter(team=team, reference__startswith="SYN-").count()
            wanted = max(0, wanted - have)
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            rate = done / max(time.monotonic() - started, 1e-6)
            self.stdout.write(f"  {done}/{total} courses ({rate:.0f}/s)")

        written = write_cohort(
            team, protocols, wanted, o["seed"], as_of, batch=o["batch"], progress=progress
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Created {written} synthetic courses for team '{team.slug}' "
                f"(seed {o['seed']}, as of {as_of}) in {time.monotonic() - started:.1f}s."
            )
        )
