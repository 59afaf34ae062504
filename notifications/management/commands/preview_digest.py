from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from notifications.email import build_digest, recipients_for, render_digest


class Command(BaseCommand):
    help = "Print the digest a user would get now (nothing is sent or stored)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--user", required=True, help="username")
        parser.add_argument("--html", action="store_true", help="print the HTML part")

    def handle(self, *args: object, user: str, html: bool, **options: object) -> None:
        User = get_user_model()
        try:
            person = User.objects.get(username=user)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named '{user}'.") from exc
        now = timezone.now()
        memberships = person.memberships.select_related("team")
        if not memberships:
            raise CommandError(f"'{user}' belongs to no team.")
        recipients = recipients_for([m.team_id for m in memberships])
        mine = [r for rs in recipients.values() for r in rs if r.user_id == person.pk]
        if not mine:
            raise CommandError(f"'{user}' has no e-mail address; there is nothing to send.")
        team_ids = sorted(r.team_id for r in mine if r.digest)
        if not team_ids:
            self.stdout.write(f"'{user}' has the daily digest turned off in every team.")
            return
        digest = build_digest(mine[0], team_ids, timezone.localdate(now), now)
        if digest.empty:
            self.stdout.write(
                f"Nothing to say: no open alerts and no changes for '{user}'; "
                "no digest would be sent."
            )
            return
        subject, text, html_part = render_digest(digest)
        self.stdout.write(f"To: {mine[0].email}\nSubject: {subject}\n")
        self.stdout.write(html_part if html else text)
