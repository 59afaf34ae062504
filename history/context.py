"""Through which channel, and for whom, the writes of this moment are made.

Set once per unit of work, never passed through the services:

* a request: ``history.middleware.HistoryMiddleware`` (``api`` under /api/, ``admin``
  under /admin/, ``web`` for the rest); the actor is the request's user, read when an
  entry is written, because DRF authenticates an API token inside the view, after every
  middleware ran (it then sets the user on the Django request too);
* a Celery task: ``task`` (history.registry connects Celery's task signals);
* anything else (``manage.py`` commands, the shell, scripts): ``command``, without an
  actor.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


class Channel:
    API = "api"
    WEB = "web"
    ADMIN = "admin"
    COMMAND = "command"
    TASK = "task"

    choices = (
        (API, "API"),
        (WEB, "web app"),
        (ADMIN, "admin"),
        (COMMAND, "management command"),
        (TASK, "background task"),
    )


@dataclass(frozen=True)
class Context:
    channel: str
    request: Any = None  # the Django request, whose user is read at write time

    def user(self) -> Any:
        user = getattr(self.request, "user", None)
        if user is not None and getattr(user, "is_authenticated", False):
            return user
        return None


_current: ContextVar[Context | None] = ContextVar("history_context", default=None)


def current() -> Context:
    return _current.get() or Context(Channel.COMMAND)


@contextlib.contextmanager
def channel(name: str, *, request: Any = None) -> Iterator[Context]:
    """Writes inside are recorded as made through ``name`` (by the request's user)."""
    token = _current.set(Context(name, request=request))
    try:
        yield _current.get()  # type: ignore[misc]
    finally:
        _current.reset(token)
