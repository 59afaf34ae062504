"""Settings for the dashboard load test: the local settings, DEBUG off, plus the
baseline views (bench/urls.py). Never used by the service itself."""

from config.settings.local import *  # noqa: F403

DEBUG = False
ROOT_URLCONF = "bench.urls"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
