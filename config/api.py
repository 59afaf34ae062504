"""API-wide conventions: one error shape, pagination, JSON 404/500 for every path.

Every error the API answers has the same body::

    {"error": {"status": 400, "code": "invalid", "message": "...",
               "fields": {"relapse_date": ["must not be before ..."]}}}

``fields`` appears on validation errors only; other keys (``allowed_transitions`` on a
409, for instance) come from the domain error's ``extra`` (config/errors.py). This
module is the one place that maps domain errors to HTTP. Messages never echo a
patient's identifying data: they name fields and rules, not values from the record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import status
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from config import errors


def whole_number(request: Any, name: str, maximum: int | None) -> int | None:
    """The query parameter ``name`` as a whole number from 1 to ``maximum`` (None when
    absent); anything else is a 400 naming it (every paginator's page and page size)."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (maximum is not None and value > maximum):
        bound = f"from 1 to {maximum}" if maximum is not None else "from 1"
        raise ValidationError({name: [f"must be a whole number {bound}."]})
    return value


class Pagination(PageNumberPagination):
    """``?page=`` (from 1) and ``?page_size=`` (1 to 500): anything else is a 400 naming
    the parameter (DRF answered ``?page=0`` or ``?page=abc`` with a 404 and silently
    replaced a bad page size by the default). A page past the last one is a 404."""

    page_size_query_param = "page_size"
    max_page_size = 500
    last_page_strings = ()

    def get_page_number(self, request: Any, paginator: Any) -> int:
        return whole_number(request, self.page_query_param, 2**31 - 1) or 1

    def get_page_size(self, request: Any) -> int:
        size = whole_number(request, self.page_size_query_param, self.max_page_size)
        return size or self.page_size


# The HTTP status of each kind of domain error (the most specific class wins).
DOMAIN_STATUS: tuple[tuple[type[errors.ApplicationError], int], ...] = (
    (errors.Invalid, status.HTTP_400_BAD_REQUEST),
    (errors.Refused, status.HTTP_409_CONFLICT),
    (errors.NotFound, status.HTTP_404_NOT_FOUND),
    (errors.ApplicationError, status.HTTP_400_BAD_REQUEST),
)


def _fields(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """A validation error as ``{field: [message, ...]}``, the documented shape: errors
    of a list's items or a nested object are named by their path (``em_sites.0``)."""
    if isinstance(detail, dict):
        found: dict[str, list[str]] = {}
        for key, value in detail.items():
            for name, messages in _fields(value, f"{prefix}.{key}" if prefix else str(key)).items():
                found.setdefault(name, []).extend(messages)
        return found
    if isinstance(detail, list) and any(isinstance(v, dict | list) for v in detail):
        found = {}
        for index, value in enumerate(detail):
            if isinstance(value, dict | list):
                child = _fields(value, f"{prefix}.{index}" if prefix else str(index))
            else:
                child = {prefix or "non_field_errors": [str(value)]}
            for name, messages in child.items():
                found.setdefault(name, []).extend(messages)
        return found
    messages = detail if isinstance(detail, list) else [detail]
    return {prefix or "non_field_errors": [str(m) for m in messages]}


def error_body(status_code: int, code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"status": status_code, "code": code, "message": message, **extra}}


def domain_error_response(exc: errors.ApplicationError) -> Response:
    status_code = next(code for kind, code in DOMAIN_STATUS if isinstance(exc, kind))
    extra = dict(exc.extra)
    if isinstance(exc, errors.Invalid):
        extra["fields"] = exc.fields
    return Response(error_body(status_code, exc.code, exc.message, **extra), status=status_code)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, errors.ApplicationError):
        set_rollback()  # as DRF does for its own errors, should the request be atomic
        return domain_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        # Model-level validation (full_clean): same 400 as a serializer's.
        detail = (
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
        exc = ValidationError(detail)
    elif isinstance(exc, Http404):
        # Django's 404 message can carry the model name and lookup; say nothing more.
        exc = NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # unexpected: Django's handler500 answers (JSON).

    if isinstance(exc, ValidationError):
        detail = exc.detail
        fields = _fields(detail if isinstance(detail, dict) else {"non_field_errors": detail})
        response.data = error_body(
            response.status_code, "invalid", errors.Invalid(fields).message, fields=fields
        )
    else:
        code = exc.get_codes() if isinstance(exc, APIException) else "error"
        if not isinstance(code, str):
            code = "error"
        message = str(exc.detail) if isinstance(exc, APIException) else str(exc)
        response.data = error_body(response.status_code, code, message)
    return response


def json_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body(404, "not_found", "Not found."), status=404)


def json_server_error(request: HttpRequest) -> JsonResponse:
    # The traceback goes to the log (with the request path only); the client learns
    # nothing about the internals or the data involved.
    return JsonResponse(
        error_body(500, "server_error", "Internal error; it has been logged."), status=500
    )


def is_api_path(path: str) -> bool:
    """Paths whose clients expect JSON: the API and the health check."""
    return path.startswith("/api/") or path == "/healthz"


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """handler404: the JSON error for the API, the web app's page elsewhere."""
    if is_api_path(request.path):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception or Http404())


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: the JSON error for the API, the web app's page elsewhere."""
    if is_api_path(request.path):
        return json_server_error(request)
    return defaults.server_error(request)


class NotFoundMiddleware:
    """Every 404 answers through :func:`not_found`, also Django's own pages: the debug
    page (DEBUG=True), which would list the URL patterns, and the admin's. Sits outside
    CommonMiddleware, so a missing trailing slash is still redirected first
    (APPEND_SLASH)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code != 404 or response.get("Content-Type", "").startswith(
            "application/json"
        ):
            return response
        return not_found(request)
