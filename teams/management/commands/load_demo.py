"""Demo teams and users for the local demo (`make run`). Idempotent: running it again
resets the demo passwords and keeps the tokens."""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand
from django.db import transaction

from teams import services
from teams.models import Membership, Role, Team

# name, slug, the seed of its demo cohort
DEMO_TEAMS = [("Demo Oncology North", "north", 2026), ("Demo Oncology South", "south", 2027)]
DEMO_USERS = [
    # username, team slug, role
    ("coord.north", "north", Role.COORDINATOR),
    ("clin.north", "north", Role.CLINICIAN),
    ("view.north", "north", Role.VIEWER),
    ("coord.south", "south", Role.COORDINATOR),
]
PASSWORDS = {"admin": "demo-admin", **{u: f"demo-{u}" for u, _, _ in DEMO_USERS}}
ROLES = (
    "  viewer: reads the team's courses, alerts and dashboards; clinician: also records and\n"
    "  moves courses; coordinator: also manages the team; admin: the Django admin (no team)."
)


class Command(BaseCommand):
    help = "Create the demo teams and users (and a demo cohort where available)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--courses",
            type=int,
            default=None,
            help="demo scenarios per team (default: all of notifications/demo.py's, "
            "about 45 courses; 0: the users only)",
        )

    @transaction.atomic
    def _load_people(self) -> tuple[list[tuple[str, str, str, str, str]], list[tuple[Any, str]]]:
        """The teams, users, memberships and tokens (the rows printed), and the users,
        whose passwords are set once their hashes are ready."""
        User = get_user_model()
        teams = {}
        for name, slug, _ in DEMO_TEAMS:
            teams[slug], _ = Team.objects.get_or_create(slug=slug, defaults={"name": name})
        rows, users = [], []
        admin, _ = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        users.append((admin, "admin"))
        rows.append(
            ("admin", "-", "superuser", PASSWORDS["admin"], services.token_get_or_create(admin).key)
        )
        for username, slug, role in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"email": f"{username}@example.org"}
            )
            users.append((user, username))
            Membership.objects.update_or_create(
                user=user, team=teams[slug], defaults={"role": role}
            )
            rows.append(
                (
                    username,
                    slug,
                    str(role),
                    PASSWORDS[username],
                    services.token_get_or_create(user).key,
                )
            )
        return rows, users

    @transaction.atomic
    def _set_passwords(self, users: list[tuple[Any, str]], hashes: dict[str, Future[str]]) -> None:
        for user, username in users:
            user.password = hashes[username].result()
            user.save(update_fields=["password"])

    def handle(self, *args: object, courses: int | None, **options: object) -> None:
        # The demo passwords are reset on every run. Hashing them (PBKDF2, about 0.2 s
        # each) runs in threads, alongside the cohort: hashlib releases the GIL for it,
        # so it costs the start nothing on a machine with a second core.
        with ThreadPoolExecutor(max_workers=2) as pool:
            hashes = {name: pool.submit(make_password, pw) for name, pw in PASSWORDS.items()}
            rows, users = self._load_people()
            self._load_cohorts(courses)
            self._set_passwords(users, hashes)
        self._print(rows)

    def _load_cohorts(self, courses: int | None) -> None:
        commands = get_commands()
        # The cohort comes from the app that knows both courses and alerts (by name: the
        # teams app sits below both).
        if "demo_cohort" in commands and courses != 0:
            for _, slug, seed in DEMO_TEAMS:
                extra = {} if courses is None else {"courses": courses}
                # A team that has its demo cohort gets nothing: loading again changes nothing.
                self._summarised("demo_cohort", team=slug, seed=seed, **extra)
            if "sweep_alerts" in commands:
                # So the demo's worklist and alerts are filled from the first minute,
                # not after beat's first sweep.
                self._summarised("sweep_alerts")

    def _print(self, rows: list[tuple[str, str, str, str, str]]) -> None:
        base = settings.REZCOURSE_BASE_URL.rstrip("/")
        self.stdout.write(
            self.style.SUCCESS("Demo users")
            + f" (sign in to the web app at {base}/, or send 'Authorization: Token <token>'):"
        )
        self.stdout.write(f"  {'username':<12} {'team':<6} {'role':<11} {'password':<18} token")
        for username, team, role, password, token in rows:
            self.stdout.write(f"  {username:<12} {team:<6} {role:<11} {password:<18} {token}")
        self.stdout.write(ROLES)

    def _summarised(self, name: str, **options: object) -> None:
        """A sub-command's last line (what it did), without its progress lines."""
        out = io.StringIO()
        call_command(name, stdout=out, **options)
        lines = [line.strip() for line in out.getvalue().splitlines() if line.strip()]
        if lines:
            self.stdout.write(f"  {lines[-1]}")
