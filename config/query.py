"""Query strings: no control characters anywhere, and no parameter the API does not
document (middleware, so every endpoint has it, including endpoints added later).

* A control character (NUL ...) in any query parameter's name or value, on any path,
  is a 400 naming the parameter: PostgreSQL cannot compare a text column with a NUL
  (that was a 500 on the text filters), and no legitimate filter holds one. The web
  app's pages answer with their 400 page, the API with its error shape.
* Under ``/api/v1/``, a query parameter the OpenAPI schema does not declare for the
  operation is a 400 naming it: a misspelt filter (``?has_open_alert=true``) would
  otherwise be ignored and answer with every row, as if the filter held. The schema
  is the one list of what each operation accepts, so it cannot drift from what is
  accepted (docs/decisions.md). DRF's ``format`` override is accepted everywhere.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from django.views import defaults

from config.parsers import CONTROL_MESSAGE, control_character_in, printable_name

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
ALWAYS_ACCEPTED = frozenset({"format"})

_known: dict[tuple[Any, str], frozenset[str]] | None = None
_lock = threading.Lock()


def _declared_parameters() -> dict[tuple[Any, str], frozenset[str]]:
    """{(view callback, HTTP method): the query parameters its operation declares},
    from the same generator that serves /api/schema/ (built once per process)."""
    from drf_spectacular.generators import SchemaGenerator

    generator = SchemaGenerator()
    try:
        schema = generator.get_schema(request=None, public=True)
    except Exception:  # noqa: BLE001 - the API must answer even if its schema cannot be built
        logger.exception("OpenAPI schema generation failed: query parameters are not checked")
        return {}
    known: dict[tuple[Any, str], frozenset[str]] = {}
    for path, _regex, method, callback in generator.endpoints:
        # As the schema names it ({pk} -> {id}).
        path = generator.coerce_path(path, method, generator.create_view(callback, method))
        operation = schema["paths"].get(path, {}).get(method.lower())
        if operation is None:
            continue
        known[callback, method] = frozenset(
            p["name"] for p in operation.get("parameters", []) if p["in"] == "query"
        )
    return known


def declared_parameters() -> dict[tuple[Any, str], frozenset[str]]:
    global _known
    if _known is None:
        with _lock:
            if _known is None:
                _known = _declared_parameters()
    return _known


def _error(request: HttpRequest, fields: dict[str, list[str]]) -> HttpResponse:
    from config.api import error_body, is_api_path
    from config.errors import Invalid

    if is_api_path(request.path):
        return JsonResponse(
            error_body(400, "invalid", Invalid(fields).message, fields=fields), status=400
        )
    return defaults.bad_request(request, exception=None)


def unknown_parameters(request: HttpRequest) -> list[str]:
    if not request.path.startswith(API_PREFIX) or not request.GET:
        return []
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return []  # the 404 answers
    method = "GET" if request.method == "HEAD" else request.method
    declared = declared_parameters().get((match.func, method))
    if declared is None:
        return []  # not an operation of the schema (OPTIONS, an undeclared method: 405)
    return sorted(set(request.GET) - declared - ALWAYS_ACCEPTED)


class QueryStringMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        bad = sorted(
            printable_name(name)
            for name, values in request.GET.lists()
            if control_character_in(name) or any(control_character_in(v) for v in values)
        )
        if bad:
            return _error(request, {name: [CONTROL_MESSAGE] for name in bad})
        if request.path.startswith(API_PREFIX) and request.GET.get("format", None) == "":
            # DRF reads a blank format as none: refused, as any blank choice.
            return _error(request, {"format": ["must not be blank."]})
        unknown = unknown_parameters(request)
        if unknown:
            message = ["is not a parameter of this operation."]
            return _error(request, dict.fromkeys(unknown, message))
        return self.get_response(request)
