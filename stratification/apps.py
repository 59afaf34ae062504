from django.apps import AppConfig


class StratificationConfig(AppConfig):
    name = "stratification"
    verbose_name = "Stratification"

    def ready(self) -> None:
        # Load and validate every protocol definition now: a broken file stops start-up
        # with a ProtocolDefinitionError naming the file and the field, instead of
        # failing on the first request that needs it.
        from stratification.selectors import protocol_registry

        protocol_registry()
