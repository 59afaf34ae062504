"""The one place where a service's refusal becomes something a page shows.

Services raise the domain errors of ``config.errors``, and the web app calls them exactly
as the API does:

* *invalid input* — ``config.errors.Invalid`` (and Django's ``ValidationError`` from
  model-level checks), ``{field: [messages]}``. The page shows each message beside its
  field, and the form keeps what was typed.
* *a refusal* — ``config.errors.Refused`` (a transition whose guard fails, an alert
  already resolved, a stale version). The page shows the refusal text and, where the
  service names them, the moves allowed now.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError

from config.errors import Invalid, Refused

INVALID: tuple[type[Exception], ...] = (Invalid, DjangoValidationError)
REFUSED: tuple[type[Exception], ...] = (Refused,)

T = TypeVar("T")


@dataclass(frozen=True)
class Refusal:
    """What a refused action tells the person: why, and what is possible instead."""

    message: str
    code: str = ""
    allowed_transitions: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def field_errors(exc: Exception) -> dict[str, list[str]]:
    """``{field: [messages]}`` of an invalid-input error (``non_field_errors`` for the
    form as a whole)."""
    if isinstance(exc, Invalid):
        return {k: list(v) for k, v in exc.fields.items()}
    if isinstance(exc, DjangoValidationError):
        if hasattr(exc, "error_dict"):
            return {k: list(v) for k, v in exc.message_dict.items()}
        return {"non_field_errors": list(exc.messages)}
    raise TypeError(f"not an invalid-input error: {exc!r}")


def refusal(exc: Exception) -> Refusal:
    extra = dict(getattr(exc, "extra", {}) or {})
    allowed = tuple(extra.pop("allowed_transitions", ()) or ())
    return Refusal(
        message=exc.message if isinstance(exc, Refused) else str(exc),
        code=getattr(exc, "code", ""),
        allowed_transitions=allowed,
        extra=extra,
    )


@dataclass
class Outcome:
    """The result of :func:`attempt`: the service's return value, or why not."""

    value: Any = None
    invalid: bool = False
    refusal: Refusal | None = None

    @property
    def ok(self) -> bool:
        return not self.invalid and self.refusal is None


def add_field_errors(form: forms.Form, errors: dict[str, list[str]]) -> None:
    """Each message beside its field; a field the form does not show (the service
    speaks of ``course``, say) goes to the top of the form, naming it."""
    for name, messages in errors.items():
        for message in messages:
            if name in form.fields:
                form.add_error(name, message)
            elif name in ("non_field_errors", "__all__"):
                form.add_error(None, message)
            else:
                form.add_error(None, f"{name.replace('_', ' ').capitalize()}: {message}")


def attempt(form: forms.Form, service: Callable[..., T], /, *args: Any, **kwargs: Any) -> Outcome:
    """Call ``service``; put invalid-input errors on ``form`` and hand back a refusal.

    Only the two kinds of service error are caught: anything else is a bug and must
    reach the error page and the log."""
    try:
        return Outcome(value=service(*args, **kwargs))
    except INVALID as exc:
        add_field_errors(form, field_errors(exc))
        return Outcome(invalid=True)
    except REFUSED as exc:
        return Outcome(refusal=refusal(exc))


def submit(form: forms.Form, call: Callable[[dict[str, Any]], T]) -> Outcome:
    """Parse ``form``; when it parses, ``call`` the service with what the service takes
    (``form.service_data()``), through :func:`attempt`. A form that does not parse is
    invalid input, its errors already beside its fields."""
    if not form.is_valid():
        return Outcome(invalid=True)
    data = form.service_data() if hasattr(form, "service_data") else dict(form.cleaned_data)
    return attempt(form, call, data)
