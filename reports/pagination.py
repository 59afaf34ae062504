"""Keyset (cursor) pages for the worklist.

A page is the next ``page_size`` rows after (or before) the key of the row it starts
from, in the queryset's order: one row comparison that the order's index range-scans,
so page 1,000 costs what page 1 costs and a row that moves between two requests is
neither shown twice nor skipped by the others. The links carry an opaque ``cursor``
(the key of the last or first row shown and the direction); there are no page numbers.

The total comes with ``count_exact``: exact for one team, possibly PostgreSQL's
estimate for several (the view decides, see :func:`reports.worklist.count`).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import F, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.utils.urls import replace_query_param

from config.api import whole_number

CURSOR = "cursor"


class KeysetPagination(BasePagination):
    """Pages of a queryset ordered by ascending columns that together are unique (the
    last one is the primary key). ``count``: a function of the unsliced queryset giving
    (total, exact)."""

    page_size = api_settings.PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = 500

    def __init__(self, count: Callable[[QuerySet], tuple[int, bool]] | None = None) -> None:
        self.count_rows = count or (lambda rows: (rows.count(), True))

    def paginate_queryset(
        self, queryset: QuerySet, request: Request, view: Any = None
    ) -> list[Any]:
        self.request = request
        self.key = tuple(queryset.query.order_by)
        size = self.get_page_size(request)
        self.count, self.count_exact = self.count_rows(queryset)
        forward, after = self._cursor(request, queryset)
        key = Tuple(*(F(name) for name in self.key))
        rows = queryset
        if after is not None:
            rows = rows.filter((TupleGreaterThan if forward else TupleLessThan)(key, after))
        if not forward:
            rows = rows.order_by(*(f"-{name}" for name in self.key))
        page = list(rows[: size + 1])
        more = len(page) > size
        page = page[:size]
        if not forward:
            page.reverse()
        # Going forward, there is more after this page if a row was left over, and
        # something before it if we came from a cursor; backward, the other way round.
        self.next = self._link(page[-1], True) if page and (more if forward else True) else None
        has_previous = after is not None if forward else more
        self.previous = self._link(page[0], False) if page and has_previous else None
        return page

    def get_page_size(self, request: Request) -> int:
        """``page_size`` from 1 to max_page_size; anything else is a 400 naming it (a
        bad size silently replaced by the default would look like a short list)."""
        size = whole_number(request, self.page_size_query_param, self.max_page_size)
        return size or self.page_size

    def get_paginated_response(self, data: Any) -> Response:
        return Response(
            {
                "count": self.count,
                "count_exact": self.count_exact,
                "next": self.next,
                "previous": self.previous,
                "results": data,
            }
        )

    def _cursor(self, request: Request, queryset: QuerySet) -> tuple[bool, tuple | None]:
        raw = request.query_params.get(CURSOR)
        if not raw:
            return True, None
        try:
            token = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
            direction, *values = json.loads(token)
            fields = [queryset.model._meta.get_field(name) for name in self.key]
            if direction not in ("n", "p") or len(values) != len(fields):
                raise ValueError(raw)
            key = tuple(f.to_python(v) for f, v in zip(fields, values, strict=True))
        except (ValueError, TypeError, binascii.Error, DjangoValidationError) as exc:
            raise ValidationError({CURSOR: ["is not a cursor from this list's links."]}) from exc
        return direction == "n", key

    def _link(self, row: Any, forward: bool) -> str:
        values = [row[name] if isinstance(row, dict) else getattr(row, name) for name in self.key]
        token = json.dumps(["n" if forward else "p", *values], default=str)
        url = self.request.build_absolute_uri()
        return replace_query_param(
            url, CURSOR, base64.urlsafe_b64encode(token.encode()).decode().rstrip("=")
        )

    def get_paginated_response_schema(self, schema: dict) -> dict:
        return {
            "type": "object",
            "required": ["count", "count_exact", "results"],
            "properties": {
                "count": {"type": "integer", "example": 123},
                "count_exact": {
                    "type": "boolean",
                    "example": True,
                    "description": "true: count is exact (always for one team); false: it "
                    "is PostgreSQL's estimate, for a scope of several teams",
                },
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "the next page: the same query with a `cursor`",
                    "example": "https://rezcourse.example/api/v1/dashboard/worklist/"
                    "?cursor=WyJuIiwgLTMsICIyMDI2LTExLTE4IiwgMTJd",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "description": "the page before this one (a `cursor` too)",
                    "example": None,
                },
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict]:
        return [
            {
                "name": CURSOR,
                "required": False,
                "in": "query",
                "description": "Opaque position from a `next` or `previous` link (keyset "
                "pagination: no page numbers).",
                "schema": {"type": "string"},
            },
            {
                "name": self.page_size_query_param,
                "required": False,
                "in": "query",
                "description": f"Rows per page (default {self.page_size}, at most "
                f"{self.max_page_size}).",
                "schema": {"type": "integer"},
            },
        ]
