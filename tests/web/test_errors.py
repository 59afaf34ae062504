"""The one adapter between service errors and pages (web/errors.py)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError as DjangoValidationError

from config.errors import Invalid, Refused
from web.errors import attempt, field_errors, refusal


class Form(forms.Form):
    reason = forms.CharField(required=False)


def _bound() -> Form:
    form = Form({"reason": "typed"})
    assert form.is_valid()
    return form


def _raise(exc: Exception):
    def service() -> None:
        raise exc

    return service


def test_field_errors_land_beside_their_fields_and_the_rest_on_top():
    form = _bound()
    outcome = attempt(form, _raise(Invalid({"reason": ["is required."], "course": ["is closed."]})))
    assert outcome.invalid and not outcome.ok and outcome.refusal is None
    assert form.errors["reason"] == ["is required."]
    assert form.non_field_errors() == ["Course: is closed."]
    assert form.data["reason"] == "typed"  # what was typed stays


def test_djangos_validation_errors_read_the_same():
    assert field_errors(DjangoValidationError({"until": ["too late"]})) == {"until": ["too late"]}
    assert field_errors(DjangoValidationError("wrong")) == {"non_field_errors": ["wrong"]}
    assert field_errors(Invalid({"x": ["flat"]})) == {"x": ["flat"]}


def test_a_refusal_carries_its_message_code_and_the_moves_allowed_now():
    form = _bound()
    exc = Refused(
        "not now", code="transition_not_allowed", allowed_transitions=["a", "b"], state="x"
    )
    outcome = attempt(form, _raise(exc))
    assert outcome.refusal == refusal(exc)
    assert outcome.refusal.message == "not now"
    assert outcome.refusal.code == "transition_not_allowed"
    assert outcome.refusal.allowed_transitions == ("a", "b")
    assert outcome.refusal.extra == {"state": "x"}
    assert not form.errors


def test_success_hands_back_the_value_and_other_errors_are_not_swallowed():
    assert attempt(_bound(), lambda: 42).value == 42
    try:
        attempt(_bound(), _raise(KeyError("bug")))
    except KeyError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a bug must reach the error page")
