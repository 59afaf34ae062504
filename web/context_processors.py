"""Template context every page of the web app needs."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from teams.models import WRITE_ROLES
from teams.selectors import team_roles


def web(request: HttpRequest) -> dict[str, Any]:
    # Lazy: pages that never show the navigation (the admin, the API) pay no query.
    return {
        "may_register": SimpleLazyObject(
            lambda: any(role in WRITE_ROLES for role in team_roles(request.user).values())
        )
    }
