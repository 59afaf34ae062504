from django.core.management.base import BaseCommand
from django.utils import timezone

from notifications.services import alerts_sweep


class Command(BaseCommand):
    help = (
        "Run the alert sweep now (as beat does every few minutes): open, resolve and "
        "escalate alerts for every active course."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts = alerts_sweep(timezone.now()).counts()
        self.stdout.write("Alert sweep: " + ", ".join(f"{n} {what}" for what, n in counts.items()))
