"""Domain errors (config/errors.py) reach a client in the API's one error shape, mapped
in one place (config/api.py)."""

from __future__ import annotations

import pytest

from config.api import exception_handler
from config.errors import ApplicationError, Invalid, NotFound, Refused


def test_invalid_is_a_400_naming_each_field():
    response = exception_handler(Invalid({"relapse_date": ["must not be in the future."]}), {})
    assert response.status_code == 400
    assert response.data == {
        "error": {
            "status": 400,
            "code": "invalid",
            "message": "Invalid input: relapse_date.",
            "fields": {"relapse_date": ["must not be in the future."]},
        }
    }


def test_a_refusal_is_a_409_with_its_code_and_what_is_possible_instead():
    exc = Refused(
        "'complete' is not possible from state 'stratified'.",
        code="transition_not_allowed",
        state="stratified",
        allowed_transitions=["start_induction"],
    )
    response = exception_handler(exc, {})
    assert response.status_code == 409
    assert response.data["error"] == {
        "status": 409,
        "code": "transition_not_allowed",
        "message": "'complete' is not possible from state 'stratified'.",
        "state": "stratified",
        "allowed_transitions": ["start_induction"],
    }


def test_a_refusal_without_a_code_is_a_plain_conflict():
    assert exception_handler(Refused("no"), {}).data["error"]["code"] == "conflict"


def test_not_found_is_a_404():
    response = exception_handler(NotFound("Not found."), {})
    assert (response.status_code, response.data["error"]["code"]) == (404, "not_found")


def test_invalid_raise_if_raises_only_when_there_is_a_problem():
    Invalid.raise_if({})
    with pytest.raises(Invalid) as caught:
        Invalid.raise_if({"reason": ["is required."]})
    assert caught.value.fields == {"reason": ["is required."]}


def test_domain_errors_know_nothing_about_http():
    for kind in (ApplicationError, Invalid, Refused, NotFound):
        assert not any(c.__module__.startswith("rest_framework") for c in kind.__mro__)
