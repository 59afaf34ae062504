"""What every view of the web app shares: the write check and page rendering."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from courses.models import TreatmentCourse
from web import selectors
from web.errors import Outcome


def require_write(user: AbstractBaseUser, team_id: int) -> None:
    """Viewers (and members of no team) may not write: a 403 page, whatever the form."""
    if not selectors.can_write(user, team_id):
        raise PermissionDenied("Your role in this team does not allow this change.")


def writable_course(request: HttpRequest, pk: int) -> TreatmentCourse:
    """The course, if it is the requester's team's (404 otherwise) and they may write
    on it (403 otherwise)."""
    course = selectors.course_or_404(request.user, pk)
    require_write(request.user, course.patient.team_id)
    return course


def page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    outcome: Outcome | None = None,
) -> HttpResponse:
    """The page; after a refused write, with the status the API answers (400 invalid
    input, 409 a refusal), so a script or a browser test can tell them apart."""
    status = 200
    if outcome is not None and not outcome.ok:
        status = 409 if outcome.refusal is not None else 400
    return render(request, template, context, status=status)
