"""Settings shared by every environment.

Everything that differs between a laptop, CI and production is read from the
environment (12-factor). The defaults are the *embedded* ones: SQLite under
``var/``, kombu's filesystem broker under ``var/``, e-mail written to files under
``var/mail/`` — so one machine with nothing but Python runs the whole service.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()

# Runtime state (SQLite file, broker queue folders, e-mail files, beat schedule).
VAR_DIR = Path(env("REZCOURSE_VAR_DIR", default=str(BASE_DIR / "var")))

SECRET_KEY = env("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "csp",
    "axes",
    "teams",
    "stratification",
    "courses",
    "notifications",
    "reports",
    "web",
    # The history of every write (django-auditlog, with our entry model: history/).
    # After auditlog, so history's admin replaces auditlog's for the entry model.
    "auditlog",
    "history",
]

AUDITLOG_LOGENTRY_MODEL = "history.Entry"
# auditlog's own migrations create its default entry table even when the model is
# swapped (as above), and nothing would ever write it; worse, a flush on PostgreSQL
# (TRUNCATE, which the tests use) does not list that table and fails on its foreign
# key. With no migrations the app has no table: its one model is swapped out.
MIGRATION_MODULES = {"auditlog": None}
# Changes as JSON values ({field: [before, after]}), not their string forms.
AUDITLOG_STORE_JSON_CHANGES = True
# The audit is about who changed what, not where from: no IP addresses kept.
AUDITLOG_DISABLE_REMOTE_ADDR = True

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Every 404 as the API's JSON error or the web app's page, whatever rendered it (outside
    # CommonMiddleware, so APPEND_SLASH still redirects first).
    # Outside the 404 replacement below, so the page it substitutes carries the policy too.
    "config.csp.CSPMiddleware",
    "config.api.NotFoundMiddleware",
    # No control characters in any query string; under /api/v1/, no query parameter
    # the OpenAPI schema does not declare for the operation (config/query.py).
    "config.query.QueryStringMiddleware",
    # Serves the admin's and Swagger UI's static files without a separate web server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The history's channel (api, admin, web) and actor for every write of the request.
    "history.middleware.HistoryMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a lockout raised during sign-in into its page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "web.context_processors.web",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'rezcourse.sqlite3'}"),
}
# Transactions are drawn around services, where they can be seen, not around
# whole requests (house style; see DESIGN.md).
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded setup runs a web server and a Celery worker against one file:
    # wait for the other writer instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-axes first: it refuses a locked-out sign-in before the password is checked.
# It only sees authenticate() calls (the sign-in forms of the web app and the admin);
# API tokens and existing sessions never pass through it.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# A signed-in session lasts a working day (shared ward computers and tablets).
SESSION_COOKIE_AGE = env.int("REZCOURSE_SESSION_HOURS", default=12) * 3600
LOGIN_URL = "web:login"
LOGIN_REDIRECT_URL = "web:worklist"
LOGOUT_REDIRECT_URL = "web:login"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
TIME_ZONE = env("DJANGO_TIME_ZONE", default="Europe/Berlin")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

# --- Web app: Content-Security-Policy and sign-in throttling ----------------------
# No inline script or style anywhere: every script and stylesheet is a static file of
# our own (htmx is vendored under web/static/, never loaded from a CDN).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# Five wrong passwords for one username from one address lock that pair out for 15
# minutes (HTTP 429). Keyed on the pair, so a ward sharing one address (NAT) is not
# locked out by one person's typos, and nobody can lock a colleague out from elsewhere.
AXES_FAILURE_LIMIT = env.int("REZCOURSE_LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("REZCOURSE_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "web/lockout.html"
# The address is REMOTE_ADDR: behind a reverse proxy every request comes from the
# proxy, so the lockout is then per username (X-Forwarded-For is not trusted: a client
# could set it to dodge the lockout).
AXES_IPWARE_META_PRECEDENCE_ORDER = ("REMOTE_ADDR",)

# --- API ---------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "teams.permissions.TeamRolePermission",
    ],
    # UTF-8 JSON only, bounded in size and depth, no control characters (config/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    # Strict booleans, id filters that are no existence oracle, strict ordering.
    "DEFAULT_FILTER_BACKENDS": [
        "config.filters.FilterBackend",
        "config.filters.StrictOrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "config.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DATETIME_FORMAT": "iso-8601",
}

# Input bounds of every endpoint (config/parsers.py, config/serializers.py and
# docs/decisions.md): a request body of at most this many bytes (413 past it), JSON
# nested at most this deep (400), free text of at most this many characters where a
# field names no limit of its own, and dates within this range.
REZCOURSE_API_MAX_BODY_BYTES = env.int("REZCOURSE_API_MAX_BODY_BYTES", default=256 * 1024)
REZCOURSE_API_MAX_JSON_DEPTH = 32
REZCOURSE_TEXT_MAX_LENGTH = 5000
REZCOURSE_DATE_MIN = date(1900, 1, 1)
REZCOURSE_DATE_MAX = date(2200, 12, 31)

SPECTACULAR_SETTINGS = {
    "TITLE": "rezcourse API",
    "DESCRIPTION": (
        "Relapsed-ALL treatment-course tracking. A tracking and safety-net tool, not a "
        "prescriber: it never doses drugs, and every automatic proposal is confirmed by a "
        "clinician. Patients are pseudonymous references; every request is scoped to the "
        "requester's teams."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation's error answers in the one error shape, and request bodies that
    # refuse undeclared properties (config/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.error_responses",
    ],
    # Several fields share a name across components (kind, status, site...): name
    # each choice set once so the schema's enums read well and generation stays
    # warning-free (a test runs `check --deploy` with warnings as failures).
    "ENUM_NAME_OVERRIDES": {
        "StepKindEnum": "stratification.definitions.StepKind.choices",
        "EventKindEnum": "courses.models.EventKind",
        "StepStatusEnum": "courses.models.StepStatus",
        "DecisionStatusEnum": "stratification.models.DecisionStatus",
        "SiteEnum": "stratification.facts.Site.choices",
        "EmSiteEnum": "stratification.facts.EmSite.choices",
        "TimePointEnum": "stratification.facts.TimePoint.choices",
        "ImmunophenotypeEnum": "stratification.facts.Immunophenotype.choices",
        "SeverityEnum": "notifications.models.Severity",
        "AlertKindEnum": "notifications.models.AlertKind",
        "MrdTimePointEnum": "stratification.definitions.MrdTimePoint.choices",
        "MrdUnitEnum": "courses.models.MrdUnit",
        "FrontlineStatusEnum": "stratification.facts.FRONTLINE_STATUSES",
        "BcrAbl1Enum": "stratification.facts.BCR_ABL1_VALUES",
    },
}

# --- Celery ------------------------------------------------------------------
# Redis when REDIS_URL (or CELERY_BROKER_URL) is set; otherwise kombu's filesystem
# transport, which needs no server at all (the embedded default). It ignores the host,
# but naming one spares the worker kombu's "No hostname was supplied" warning.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="") or REDIS_URL or "filesystem://localhost/"
BROKER_DIR = VAR_DIR / "broker"
# Publishing retries: kombu's default is to retry forever, which would hang a web
# request while Redis is down (celery/celery#4627). Fail within about a second
# instead; what was not queued is caught up by the next periodic sweep / outbox drain.
REZCOURSE_BROKER_PUBLISH_RETRY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
if CELERY_BROKER_URL.startswith("filesystem://"):
    # kombu expects these folders to exist, in the web process (which publishes) as
    # much as in the worker; creating them here covers both.
    for _sub in ("queue", "control"):
        (BROKER_DIR / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A task published but not acknowledged comes back after this long; our tasks
        # are idempotent sweeps and outbox drains, so a redelivery is harmless.
        "visibility_timeout": 3600,
        **REZCOURSE_BROKER_PUBLISH_RETRY,
    }
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A sweep or an outbox drain that is running when Redis drops finishes its work: its
# results go to PostgreSQL, not to the broker. Cancelling it (Celery 6's default)
# would only redeliver it later, and a drain cut between SMTP's 250 and "sent" would
# resend that message (docs/reliability.md's redis-down drill). Said explicitly, so
# the default changing under an upgrade changes nothing here.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict = {
    "heartbeat": {
        "task": "notifications.tasks.heartbeat",
        "schedule": env.float("REZCOURSE_HEARTBEAT_SECONDS", default=60.0),
    },
    "alerts-sweep": {
        "task": "notifications.tasks.sweep_alerts",
        "schedule": env.float("REZCOURSE_ALERT_SWEEP_SECONDS", default=300.0),
    },
    # Picks up outbox rows whose task was lost (broker down) and due retries.
    "outbox-drain": {"task": "notifications.tasks.drain_outbox", "schedule": 60.0},
    # Each team's digest goes out at the first run after its local digest hour.
    "digests": {"task": "notifications.tasks.send_digests", "schedule": 900.0},
}

# --- E-mail ------------------------------------------------------------------
# EMAIL_URL (e.g. smtp://user:pass@host:587/?tls=True) or EMAIL_HOST selects SMTP;
# without either, messages are written as files under var/mail/ for inspection.
EMAIL_URL = env("EMAIL_URL", default="")
if EMAIL_URL:
    vars().update(env.email_url_config(EMAIL_URL))
elif env("EMAIL_HOST", default=""):
    EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    EMAIL_HOST = env("EMAIL_HOST")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
else:
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
# SMTP connect and per-command timeout (seconds). Without one, a stalled server (a
# tarpit, a network hang) would hold a worker and its claimed e-mails forever. The
# outbox lowers it to a tenth of REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS when that is
# shorter, so a message always finishes well within its claim.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=30.0)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="rezcourse <rezcourse@localhost>")

# --- rezcourse ---------------------------------------------------------------
# Where links in e-mails (and the iCal feed) point: the web app's address. `make run
# HOST=... PORT=...` sets it to where it serves unless it is set already.
REZCOURSE_BASE_URL = env("REZCOURSE_BASE_URL", default="http://127.0.0.1:8000")
# Alert thresholds used when a protocol definition does not carry its own (days).
# Local defaults to confirm; see docs/alerts.md.
REZCOURSE_ALERT_DEFAULTS = {
    "hsct_referral_missing_days": 14,
    "hsct_delayed_days": 90,
    "mrd_transplant_planned_within_days": 21,
    "mrd_before_hsct_window_days": 30,
    "course_stalled_days": 45,
    "hsct_decision_pending_days": 7,
    "mrd_decision_missing_days": 7,
    "non_response_decision_days": 7,
    # A fraction of cells (10^-3), not days.
    "mrd_high_before_hsct_threshold": 0.001,
    "donor_search_stalled_days": 14,
    "cumulative_delay_days": 28,
    "course_stalled_maintenance_days": 90,
    "course_stalled_post_transplant_days": 100,
    "hsct_proposal_unconfirmed_days": 3,
    "stratification_unconfirmed_days": 7,
}
# An open (unacknowledged, unsnoozed) alert escalates one level after each of these
# many hours since it opened.
REZCOURSE_ALERT_ESCALATION_HOURS: list[int] = [
    int(h) for h in env.list("REZCOURSE_ALERT_ESCALATION_HOURS", default=["24", "72"])
]
# A snooze may not hide an alert for longer than this; a high alert (a transplant at
# risk) for at most a week (local defaults, docs/alerts.md).
REZCOURSE_ALERT_MAX_SNOOZE_DAYS = env.int("REZCOURSE_ALERT_MAX_SNOOZE_DAYS", default=90)
REZCOURSE_ALERT_MAX_SNOOZE_DAYS_BY_SEVERITY: dict[str, int] = {
    "high": env.int("REZCOURSE_ALERT_MAX_SNOOZE_DAYS_HIGH", default=7),
}
# How often beat runs the full alert sweep.
REZCOURSE_ALERT_SWEEP_SECONDS = env.float("REZCOURSE_ALERT_SWEEP_SECONDS", default=300.0)
# The outbox: retries with exponential backoff from BASE to MAX seconds between
# attempts, MAX_ATTEMPTS in all (the defaults cover an SMTP outage of about 4 hours);
# a row claimed but not renewed or finished within the lease is taken over by another
# worker (a worker renews its claim before each message; a batch starts no message
# after a quarter of the lease). See notifications/email/delivery.py.
REZCOURSE_EMAIL_RETRY_BASE_SECONDS = env.int("REZCOURSE_EMAIL_RETRY_BASE_SECONDS", default=60)
REZCOURSE_EMAIL_RETRY_MAX_SECONDS = env.int("REZCOURSE_EMAIL_RETRY_MAX_SECONDS", default=1800)
REZCOURSE_EMAIL_MAX_ATTEMPTS = env.int("REZCOURSE_EMAIL_MAX_ATTEMPTS", default=12)
REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS = env.int("REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS", default=600)
# Extra folders with centre-specific protocol definition files.
REZCOURSE_PROTOCOL_DIRS: list[str] = env.list("REZCOURSE_PROTOCOL_DIRS", default=[])

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        # django-axes announces its version at every start at INFO; lockouts are WARNING.
        "axes": {"level": "WARNING"},
    },
}
