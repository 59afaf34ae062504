from django.db import models


class Heartbeat(models.Model):
    """The last time a periodic job ran, so operators (and /healthz) can tell that
    beat and the workers are alive. One row per job name."""

    name = models.CharField(max_length=60, primary_key=True)
    last_seen_at = models.DateTimeField()
    runs = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
