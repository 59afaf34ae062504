"""What the history records, declared once: every tracked model with the path from a
row to its team (and to the user it belongs to), and the fields left out.

Writes through ``Model.save()`` and ``delete()`` are recorded by django-auditlog's
signals (one read of the old row and one insert per write). Set-based writes
(``QuerySet.update``, ``bulk_create``, ``config.db.insert_rows``) send no signal and
are not recorded: they are the system's own derived writes (the alert sweep, the
dashboards' state, the schedule's due dates, the latest clinical date), and the sweep
stays at its per-row cost. A person's action on an alert (acknowledge, snooze,
resolve) saves the alert, so it is recorded.

API tokens and calendar-feed tokens are never recorded as rows (a token's key is its
primary key and its text): their rotation is recorded on the user, without the secret.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from auditlog.registry import auditlog
from django.apps import apps
from django.db.models.signals import post_delete, post_save


@dataclass(frozen=True)
class Tracked:
    team: str | None  # attribute path from the row to its team id
    owner: str | None = None  # ... to the id of the user it belongs to
    exclude: tuple[str, ...] = field(default=())


_COURSE_TEAM = "course.patient.team_id"
# Bookkeeping the services keep with set-based updates; a save() carries them along.
_COURSE_DERIVED = ("last_activity_at", "last_clinical_on", "created_at")

TRACKED: dict[str, Tracked] = {
    "teams.Team": Tracked(team="pk"),
    "teams.Membership": Tracked(team="team_id", owner="user_id"),
    "notifications.NotificationPreference": Tracked(
        team="membership.team_id", owner="membership.user_id"
    ),
    "notifications.Alert": Tracked(team=_COURSE_TEAM),
    "courses.Patient": Tracked(team="team_id", exclude=("created_at",)),
    "courses.Relapse": Tracked(team="patient.team_id", exclude=("created_at",)),
    "courses.TreatmentCourse": Tracked(team="patient.team_id", exclude=_COURSE_DERIVED),
    "courses.PlannedStep": Tracked(team=_COURSE_TEAM),
    "courses.BlockAdministration": Tracked(team=_COURSE_TEAM),
    "courses.ResponseAssessment": Tracked(team=_COURSE_TEAM),
    "courses.MrdResult": Tracked(team=_COURSE_TEAM),
    "courses.HsctReferral": Tracked(team=_COURSE_TEAM),
    "courses.ClinicalEvent": Tracked(team=_COURSE_TEAM),
}

# Secrets whose rotation is recorded on their user: model -> the name of the change.
TOKENS: dict[str, str] = {
    "authtoken.Token": "api_token",
    "web.CalendarFeed": "calendar_token",
}

_scopes: dict[type, Tracked] = {}


def _walk(row: Any, path: str | None) -> int | None:
    if path is None:
        return None
    value = row
    for name in path.split("."):
        value = getattr(value, name, None)
        if value is None:
            return None
    return value


def scope_of(instance: Any) -> tuple[int | None, int | None]:
    """(team id, owner id) of a tracked row, or of a user (a token's rotation: the
    user's own, no team)."""
    tracked = _scopes.get(type(instance))
    if tracked is None:
        return None, getattr(instance, "pk", None)
    return _walk(instance, tracked.team), _walk(instance, tracked.owner)


def _token_written(sender: type, instance: Any, created: bool = False, **kwargs: Any) -> None:
    from history.models import Entry

    name = TOKENS[sender._meta.label]
    if kwargs.get("signal") is post_delete:
        change = ["(set)", None]
    else:
        change = [None if created else "(set)", "(new)"]
    Entry.objects.log_create(
        instance.user,
        action=Entry.Action.UPDATE,
        changes={name: change},
        force_log=True,
    )


def connect() -> None:
    """Register the tracked models with django-auditlog, and the token signals."""
    for label, tracked in TRACKED.items():
        model = apps.get_model(label)
        _scopes[model] = tracked
        auditlog.register(model, exclude_fields=list(tracked.exclude))
    for label in TOKENS:
        model = apps.get_model(label)
        post_save.connect(_token_written, sender=model, dispatch_uid=f"history-{label}-save")
        post_delete.connect(_token_written, sender=model, dispatch_uid=f"history-{label}-delete")
    _connect_celery()


def _connect_celery() -> None:
    """A Celery task's writes are the ``task`` channel."""
    from celery.signals import task_postrun, task_prerun

    from history.context import Channel, Context, _current

    tokens: dict[str, Any] = {}

    def started(task_id: str | None = None, **kwargs: Any) -> None:
        tokens[task_id or ""] = _current.set(Context(Channel.TASK))

    def ended(task_id: str | None = None, **kwargs: Any) -> None:
        token = tokens.pop(task_id or "", None)
        if token is not None:
            _current.reset(token)

    task_prerun.connect(started, weak=False, dispatch_uid="history-task-prerun")
    task_postrun.connect(ended, weak=False, dispatch_uid="history-task-postrun")
