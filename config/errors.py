"""Domain errors: what a service refuses, and why, with no notion of HTTP.

Services (and the models' own guarantees) raise these; they know nothing about the
channel that called them. ``config.api.exception_handler`` is the one place that turns
them into the API's error shape, and the admin shows their message on the page.

* :class:`Invalid` -- the input is wrong; ``fields`` names each field and why
  (``{"relapse_date": ["must not be before ..."]}``). The API answers 400 ``invalid``.
* :class:`Refused` -- the input is well formed, but the action is not possible now: a
  transition the record does not allow, a stale version, a closed course. The API
  answers 409 with the error's ``code`` and its extra keys (``allowed_transitions``,
  ``state``, ``version`` ...), so a client can tell what *is* possible.
* :class:`NotFound` -- the object does not exist for this requester (another team's
  object is "not found", never "forbidden"). The API answers 404.

Messages name fields and rules, never values that could identify a patient.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


class ApplicationError(Exception):
    """Base of the domain errors: a message, a stable machine-readable ``code`` and
    extra keys that travel into the error body."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra


class Invalid(ApplicationError):
    """Bad input, field by field: ``{field: [message, ...]}``."""

    code = "invalid"

    def __init__(self, fields: Mapping[str, Iterable[str]], message: str | None = None) -> None:
        self.fields = {str(k): [str(m) for m in v] for k, v in fields.items()}
        super().__init__(message or "Invalid input: " + ", ".join(self.fields) + ".")

    @classmethod
    def raise_if(cls, fields: Mapping[str, Iterable[str]]) -> None:
        """Raise when ``fields`` holds any problem (the validators return ``{}`` when
        the input is fine)."""
        if fields:
            raise cls(fields)


class Refused(ApplicationError):
    """A well-formed request for something that is not possible now."""

    code = "conflict"


class NotFound(ApplicationError):
    code = "not_found"
