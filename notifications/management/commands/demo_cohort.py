import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications.demo import SCENARIOS, demo_cohort
from teams.models import WRITE_ROLES, Membership, Team


class Command(BaseCommand):
    help = (
        "Write the demo cohort for a team (notifications/demo.py: one course per scenario, "
        "through the same services as the API, dated back from today). Nothing is written "
        "for a team that already has demo patients."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--team", required=True, help="team slug")
        parser.add_argument("--seed", type=int, default=2026)
        parser.add_argument(
            "--courses",
            type=int,
            default=len(SCENARIOS),
            help=f"the first N scenarios only (default: all {len(SCENARIOS)})",
        )

    def handle(self, *args: object, team: str, seed: int, courses: int, **options: object) -> None:
        try:
            found = Team.objects.get(slug=team)
        except Team.DoesNotExist as exc:
            raise CommandError(f"No team with slug '{team}'.") from exc
        # The team's own clinician records, as one would through the web app.
        member = (
            Membership.objects.filter(team=found, role__in=WRITE_ROLES)
            .select_related("user")
            .order_by("role", "user__username")
            .first()
        )
        if member is None:
            raise CommandError(f"Team '{team}' has no clinician or coordinator to record as.")
        started = time.monotonic()
        written = demo_cohort(
            found, now=timezone.now(), actor=member.user, seed=seed, limit=max(courses, 0)
        )
        if written == 0 and courses > 0:
            self.stdout.write(f"Team '{team}' already has its demo cohort; nothing written.")
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {written} demo courses for team '{team}' as {member.user.username} "
                f"in {time.monotonic() - started:.1f} s."
            )
        )
