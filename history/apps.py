from django.apps import AppConfig


class HistoryConfig(AppConfig):
    name = "history"
    verbose_name = "History (every write)"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from history import registry

        registry.connect()
