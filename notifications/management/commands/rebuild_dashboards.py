from django.core.management.base import BaseCommand
from django.utils import timezone

from notifications.services import dashboards_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the dashboards' precomputed state (worklist attention rows, summary facts "
        "and counters) from the courses and alerts, for every course. The sweeps keep it "
        "current; this is for data changed outside the services (a restore, a hand edit)."
    )

    def handle(self, *args: object, **options: object) -> None:
        counts = dashboards_rebuild(timezone.now())
        self.stdout.write(
            "Dashboards rebuilt: " + ", ".join(f"{n} {what}" for what, n in counts.items())
        )
