from django.apps import AppConfig


class StratificationConfig(AppConfig):
    name = "stratification"
    verbose_name = "Stratification"
