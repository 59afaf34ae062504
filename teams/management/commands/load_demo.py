"""Demo teams and users for the local demo (`make run`). Idempotent: running it again
resets the demo passwords and keeps the tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management import get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from teams import services
from teams.models import Membership, Role, Team

DEMO_TEAMS = [("Demo Oncology North", "north"), ("Demo Oncology South", "south")]
DEMO_USERS = [
    # username, team slug, role
    ("coord.north", "north", Role.COORDINATOR),
    ("clin.north", "north", Role.CLINICIAN),
    ("view.north", "north", Role.VIEWER),
    ("coord.south", "south", Role.COORDINATOR),
]


class Command(BaseCommand):
    help = "Create the demo teams and users (and a demo cohort where available)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--courses", type=int, default=40, help="demo courses per team")

    @transaction.atomic
    def _load_people(self) -> list[tuple[str, str, str, str, str]]:
        User = get_user_model()
        teams = {}
        for name, slug in DEMO_TEAMS:
            teams[slug], _ = Team.objects.get_or_create(slug=slug, defaults={"name": name})
        rows = []
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        admin.set_password("demo-admin")
        admin.save()
        rows.append(
            ("admin", "-", "superuser", "demo-admin", services.token_get_or_create(admin).key)
        )
        for username, slug, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.org"}
            )
            password = f"demo-{username}"
            user.set_password(password)
            user.save()
            Membership.objects.update_or_create(
                user=user, team=teams[slug], defaults={"role": role}
            )
            rows.append(
                (username, slug, str(role), password, services.token_get_or_create(user).key)
            )
        return rows

    def handle(self, *args: object, courses: int, **options: object) -> None:
        rows = self._load_people()
        self.stdout.write(self.style.SUCCESS("Demo users (sign in at /, or use the token):"))
        self.stdout.write(f"  {'username':<12} {'team':<6} {'role':<11} {'password':<18} token")
        for username, team, role, password, token in rows:
            self.stdout.write(f"  {username:<12} {team:<6} {role:<11} {password:<18} {token}")
        commands = get_commands()
        if "make_cohort" in commands and courses > 0:
            from django.core.management import call_command

            for _, slug in DEMO_TEAMS:
                # top_up: running the demo again adds no courses.
                call_command(
                    "make_cohort",
                    courses=courses,
                    team=slug,
                    seed=2026,
                    top_up=True,
                    stdout=self.stdout,
                )
            if "sweep_alerts" in commands:
                # So the demo's worklist and alerts are filled from the first minute,
                # not after beat's first sweep.
                call_command("sweep_alerts", stdout=self.stdout)
