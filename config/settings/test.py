"""pytest settings.

Unit tests use whatever DATABASE_URL says (SQLite by default, PostgreSQL in CI) and
run Celery tasks eagerly; integration tests (tests/integration/) start a real worker
against REDIS_URL and override the eager setting themselves.
"""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-secret-key-not-for-production"
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LOGGING["root"]["level"] = env("LOG_LEVEL", default="WARNING")  # noqa: F405

# Close connections after each request/task: integration tests run a Celery worker
# thread, and a lingering connection would block dropping the test database.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405

# Static files straight from the apps (no collectstatic step in development/tests).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
