from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Alerts and notifications"

    def ready(self) -> None:
        from notifications import signals  # noqa: F401 - connects the receivers
