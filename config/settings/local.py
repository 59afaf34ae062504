"""Developer laptop / demo: the embedded defaults with DEBUG on."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Only for the local demo; production.py refuses to start without a real key.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="local-insecure-key-do-not-use-in-production")

# Static files straight from the apps (no collectstatic step in development/tests).
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
