from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from teams import services


class Command(BaseCommand):
    help = "Print a user's API token, creating it if needed; --rotate replaces it."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--rotate", action="store_true", help="Replace the token; the old one stops working."
        )

    def handle(self, *args: object, username: str, rotate: bool, **options: object) -> None:
        User = get_user_model()
        try:
            user = User.objects.get(username=username)
        except User.DoesNotExist as exc:
            raise CommandError(f"No user named '{username}'.") from exc
        if not user.is_active:
            raise CommandError(f"User '{username}' is inactive; activate it first.")
        token = services.token_rotate(user) if rotate else services.token_get_or_create(user)
        self.stdout.write(token.key)
