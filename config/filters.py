"""Filtering and ordering that refuse what they cannot honour (DRF's defaults,
``DEFAULT_FILTER_BACKENDS``, so every list endpoint has them).

* A boolean filter takes ``true`` or ``false``; anything else is a 400 naming it
  (django-filter's select widget read ``?has_open_alerts=2`` as true). A blank choice
  or id (``?role=``) is a 400 too, not "no filter".
* A filter on a related object's id (``?team=``, ``?patient=``, ``?alert=``) is a plain
  comparison with a whole number: an id that names nothing the requester can see gives
  an empty list, whether it exists in another team or nowhere. django-filter's default looked the id
  up among *all* rows, so another team's id answered 200 and a nonexistent one 400:
  an existence oracle. A value that is not an id is still a 400.
* An ``ordering`` term that is not one of the view's ``ordering_fields`` is a 400
  naming ``ordering`` and listing the allowed ones (DRF ignored it).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db.models import Model, QuerySet
from django_filters import utils
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import get_model_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import OrderingFilter
from rest_framework.request import Request

BOOLEAN_VALUES = frozenset({"true", "false"})
ID_MAX = 2**63 - 1
MODEL_FILTERS = (django_filters.ModelChoiceFilter, django_filters.ModelMultipleChoiceFilter)


class IdFilter(django_filters.Filter):
    field_class = forms.IntegerField

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(*args, **kwargs)


def _is_id(model: type[Model], path: str) -> bool:
    """Whether ``path`` leads to a relation or a primary key (a whole number: django-
    filter's NumberFilter would take 0.5)."""
    field = get_model_field(model, path)
    return field is not None and (field.is_relation or field.primary_key)


class FilterBackend(DjangoFilterBackend):
    def get_filterset(self, request: Request, queryset: QuerySet, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is None:
            return None
        for name, old in list(filterset.filters.items()):
            if isinstance(old, MODEL_FILTERS) or (
                isinstance(old, django_filters.NumberFilter)
                and _is_id(queryset.model, old.field_name)
            ):
                new = IdFilter(field_name=old.field_name, lookup_expr="exact", label=old.label)
                new.parent = filterset
                filterset.filters[name] = new
        return filterset

    def filter_queryset(self, request: Request, queryset: QuerySet, view: Any) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        errors: dict[str, list[str]] = {}
        for name, f in filterset.filters.items():
            values = request.query_params.getlist(name)
            if isinstance(f, django_filters.BooleanFilter):
                if any(v not in BOOLEAN_VALUES for v in values):
                    errors[name] = ["must be true or false."]
            elif "" in values and not isinstance(f, django_filters.CharFilter):
                # django-filter reads a blank choice or id as "no filter": every row.
                errors[name] = ["must not be blank."]
        if not filterset.is_valid():
            errors = {**utils.translate_validation(filterset.errors).detail, **errors}
        if errors:
            raise ValidationError(errors)
        return filterset.qs


class StrictOrderingFilter(OrderingFilter):
    def get_ordering(self, request: Request, queryset: QuerySet, view: Any) -> Any:
        if request.query_params.get(self.ordering_param, None) == "":
            raise ValidationError({self.ordering_param: ["must not be blank."]})
        return super().get_ordering(request, queryset, view)

    def remove_invalid_fields(
        self, queryset: QuerySet, fields: list[str], view: Any, request: Request
    ) -> list[str]:
        valid = super().remove_invalid_fields(queryset, fields, view, request)
        if len(valid) != len(fields):
            allowed = sorted(
                name for name, _label in self.get_valid_fields(queryset, view, {"request": request})
            )
            message = f"must be one or more of {', '.join(allowed)} (- first to reverse)."
            raise ValidationError({self.ordering_param: [message]})
        return valid

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        """``ordering`` as what it is: a comma-separated list of the view's
        ordering fields (``-`` first to reverse); not offered where there are none."""
        fields = getattr(view, "ordering_fields", None)
        if isinstance(fields, str):
            return super().get_schema_operation_parameters(view)
        if not fields:
            return []
        names = sorted(f if isinstance(f, str) else f[0] for f in fields)
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Comma-separated fields to order by; - first to reverse.",
                "schema": {
                    "type": "array",
                    "items": {"type": "string", "enum": names + [f"-{n}" for n in names]},
                },
                "style": "form",
                "explode": False,
            }
        ]
