"""The Celery application.

Broker: Redis when REDIS_URL / CELERY_BROKER_URL is set, else kombu's filesystem
transport under var/broker/ (see config/settings/base.py). Tasks are thin: they call
services, which are idempotent, so a redelivered task changes nothing.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("rezcourse")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
