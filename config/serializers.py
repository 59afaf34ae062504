"""The project's serializers module: DRF's, with the API's input rules built in.

Import it in place of DRF's (``from config import serializers``); every
``serializers.X`` then names either DRF's own class or the project's stricter one
below, so a serializer added later to a module that imports this one gets the rules
without doing anything (tests/test_api_strictness.py walks every write operation of
the schema and holds them):

* **Unknown fields are refused.** A key that is not a writable field of the
  serializer is a 400 naming it (``"bm_blasts": ["is not a known field."]``): a
  misspelt optional field would otherwise be ignored and silently change the outcome.
  A read-only field sent in a write is refused as such (``"is read-only."``). Query
  strings are exempt here: config/query.py checks them against the schema.
* **JSON types are what the schema says:** a string field takes a string (DRF took
  ``0`` as "0"), a boolean ``true``/``false`` (not ``0`` or ``"no"``), a number a JSON
  number (not ``"5"``, not NaN), an integer a JSON integer. A query string is read as
  that JSON first (``typed_query``: ``true``, digits), and a blank parameter is a
  value, not an absent one.
* **Free text is bounded.** A ``CharField`` (and every model ``CharField`` or
  ``TextField``) without its own ``max_length`` takes ``REZCOURSE_TEXT_MAX_LENGTH``
  (5,000 characters) on input. Control characters never get this far
  (config/parsers.py).
* **Dates are bounded:** a ``DateField`` refuses dates before 1900-01-01 or after
  2200-12-31 (``REZCOURSE_DATE_MIN`` / ``REZCOURSE_DATE_MAX``). Year 9999 used to
  overflow the schedule arithmetic (a 500). The clinical plausibility of a date
  (after birth, not in the future ...) is the services' business; this is only the
  range any date in this service can have.
* **Integers fit the database:** without bounds of its own, an ``IntegerField`` takes
  the 32-bit range, so no input reaches PostgreSQL as "integer out of range".
* **An enum has no empty string:** a model choice field that may be blank (an alert's
  ``resolution`` before it is resolved) is ``null`` in answers and declared nullable;
  on input, null and ``""`` both mean "none".
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.db import models
from django.http import QueryDict
from rest_framework import serializers as _drf
from rest_framework.fields import empty
from rest_framework.serializers import *  # noqa: F403 - this module stands in for DRF's

INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1
UNKNOWN_FIELD = "is not a known field."
READ_ONLY_FIELD = "is read-only."


def text_max_length() -> int:
    return settings.REZCOURSE_TEXT_MAX_LENGTH


class CharField(_drf.CharField):
    def __init__(self, **kwargs: Any) -> None:
        if not kwargs.get("read_only") and kwargs.get("max_length") is None:
            kwargs["max_length"] = text_max_length()
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")  # DRF took 0 for "0"
        return super().to_internal_value(data)


class BooleanField(_drf.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")  # DRF took 0, "no", "off" ...
        return data


class FloatField(_drf.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("invalid")
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            self.fail("invalid")
        return value


class DateField(_drf.DateField):
    default_error_messages = {"out_of_range": "must be between {min} and {max}."}

    def to_internal_value(self, value: Any) -> datetime.date:
        parsed = super().to_internal_value(value)
        low, high = settings.REZCOURSE_DATE_MIN, settings.REZCOURSE_DATE_MAX
        if not low <= parsed <= high:
            self.fail("out_of_range", min=low.isoformat(), max=high.isoformat())
        return parsed


class IntegerField(_drf.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        if kwargs.get("min_value") is None:
            kwargs["min_value"] = INT32_MIN
        if kwargs.get("max_value") is None:
            kwargs["max_value"] = INT32_MAX
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")  # DRF took "5", 5.0 and true
        return super().to_internal_value(data)


class ChoiceField(_drf.ChoiceField):
    # With ``blank_as_null`` (by default: ``allow_blank`` and no "" among the choices),
    # the blank is null: shown as null, declared nullable, null or "" on input stored
    # as "". (Comments, not docstrings, on these bases: the schema would show a
    # docstring as the description of every serializer that has none.)

    def __init__(self, choices: Any, *, blank_as_null: bool | None = None, **kwargs: Any) -> None:
        super().__init__(choices, **kwargs)
        if blank_as_null is None:
            blank_as_null = self.allow_blank and "" not in self.choices
        self.blank_as_null = blank_as_null
        if self.blank_as_null:
            self.allow_blank = False  # the schema's enum then carries null, not ""
            self.allow_null = True

    def run_validation(self, data: Any = empty) -> Any:
        if self.blank_as_null and data in (None, ""):
            return ""
        return super().run_validation(data)

    def to_representation(self, value: Any) -> Any:
        if self.blank_as_null and value in (None, ""):
            return None
        return super().to_representation(value)


class StrictInputMixin:
    # Refuses keys that are not writable fields (see the module docstring).

    def to_internal_value(self, data: Any) -> Any:
        # A query string's parameters are checked against the schema (config/query.py):
        # the page, its size and the format are there too.
        problems = {} if isinstance(data, QueryDict) else self.unexpected_keys(data)
        if isinstance(data, QueryDict):
            data = self.typed_query(data)
        try:
            value = super().to_internal_value(data)  # type: ignore[misc]
        except _drf.ValidationError as exc:
            if problems and isinstance(exc.detail, dict):
                exc.detail = {**problems, **exc.detail}
            raise
        if problems:
            raise _drf.ValidationError(problems)
        return value

    def typed_query(self, query: QueryDict) -> dict[str, Any]:
        """A query string as the JSON the fields expect: each parameter's last value,
        ``true``/``false`` for a boolean field and digits for a number field as JSON
        values (anything else stays text, which those fields refuse). A blank value
        is a value, not an absent one (DRF's HTML-form reading dropped it)."""
        fields = self.fields  # type: ignore[attr-defined]
        data: dict[str, Any] = {}
        for name in query:
            value: Any = query[name]
            field = fields.get(name)
            if isinstance(field, _drf.BooleanField):
                value = {"true": True, "false": False}.get(value, value)
            elif isinstance(field, _drf.IntegerField | _drf.FloatField):
                value = _number(value, float if isinstance(field, _drf.FloatField) else int)
            data[name] = value
        return data

    def unexpected_keys(self, data: Any) -> dict[str, list[str]]:
        if not isinstance(data, Mapping):
            return {}
        fields = self.fields  # type: ignore[attr-defined]
        writable = {f.field_name for f in self._writable_fields}  # type: ignore[attr-defined]
        return {
            str(key): [READ_ONLY_FIELD if key in fields else UNKNOWN_FIELD]
            for key in data
            if key not in writable
        }


INTEGER_TEXT = re.compile(r"-?[0-9]{1,19}")
NUMBER_TEXT = re.compile(r"-?[0-9]{1,30}(\.[0-9]{1,30})?([eE][-+]?[0-9]{1,3})?")


def _number(text: str, kind: type) -> Any:
    pattern = INTEGER_TEXT if kind is int else NUMBER_TEXT
    return kind(text) if pattern.fullmatch(text) else text


class Serializer(StrictInputMixin, _drf.Serializer):
    pass


class ModelSerializer(StrictInputMixin, _drf.ModelSerializer):
    serializer_field_mapping = {
        **_drf.ModelSerializer.serializer_field_mapping,
        models.CharField: CharField,
        models.TextField: CharField,
        models.DateField: DateField,
        models.BooleanField: BooleanField,
        models.FloatField: FloatField,
        models.IntegerField: IntegerField,
        models.SmallIntegerField: IntegerField,
        models.PositiveIntegerField: IntegerField,
        models.PositiveSmallIntegerField: IntegerField,
    }
    serializer_choice_field = ChoiceField

    def build_standard_field(self, field_name: str, model_field: models.Field) -> tuple:
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if issubclass(field_class, ChoiceField):
            # Decided here, from the model: DRF drops allow_blank from read-only fields.
            choices = {value for value, _label in model_field.flatchoices}
            kwargs["blank_as_null"] = model_field.blank and "" not in choices
        return field_class, kwargs
