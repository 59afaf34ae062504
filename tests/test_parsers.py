"""Request bodies that cannot be abused (issue 15, findings 2 and 3): config/parsers.py
is the only parser of every endpoint."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import override_settings

from teams.models import Membership, Role

pytestmark = pytest.mark.django_db

STRATIFY = "/api/v1/stratify/"


def post_raw(client: Any, url: str, body: bytes | str, content_type: str) -> Any:
    return client.generic("POST", url, body, content_type=content_type)


@pytest.mark.parametrize("charset", ["bz2", "zlib", "rot13", "utf-16", "latin-1", "BZ2"])
def test_a_body_in_another_charset_is_a_415_and_never_decoded(api, clinician, charset) -> None:
    # 294 bytes of bz2 once decompressed to 300 MB before parsing; rot13 was a 500.
    response = post_raw(
        api(clinician), STRATIFY, b'{"protocol": "x"}', f"application/json; charset={charset}"
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", "utf8", '"utf-8"'])
def test_utf8_json_is_parsed_with_or_without_a_charset(api, clinician, charset) -> None:
    response = post_raw(api(clinician), STRATIFY, b"{}", f"application/json; charset={charset}")
    assert response.status_code == 400
    assert "protocol" in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    "content_type",
    ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"],
)
def test_anything_but_json_is_a_415(api, clinician, content_type) -> None:
    response = post_raw(api(clinician), STRATIFY, "protocol=x", content_type)
    assert response.status_code == 415


@override_settings(REZCOURSE_API_MAX_BODY_BYTES=1000)
def test_a_body_past_the_size_limit_is_a_413_before_it_is_decoded(api, clinician) -> None:
    body = '{"protocol": "' + "x" * 2000 + '"}'
    response = post_raw(api(clinician), STRATIFY, body, "application/json")
    assert response.status_code == 413
    assert response.json()["error"] == {
        "status": 413,
        "code": "payload_too_large",
        "message": "The request body is larger than 1000 bytes.",
    }


@pytest.mark.parametrize("url_name", ["stratify", "acknowledge"])
def test_deeply_nested_json_is_a_400_not_a_recursion_error(
    api, team, clinician, make_course, make_alert, url_name
) -> None:
    alert = make_alert(make_course(team, clinician))
    url = STRATIFY if url_name == "stratify" else f"/api/v1/alerts/{alert.pk}/acknowledge/"
    for body in ("[" * 1000 + "]" * 1000, '{"a":' * 20_000 + "1" + "}" * 20_000):
        response = post_raw(api(clinician), url, body, "application/json")
        assert response.status_code == 400, response.content
        assert response.json()["error"]["code"] == "parse_error"


def test_nesting_within_the_limit_is_parsed(api, clinician) -> None:
    body = '{"em_sites": ' + "[" * 20 + "]" * 20 + "}"
    response = post_raw(api(clinician), STRATIFY, body, "application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"  # parsed, then refused as facts


def test_a_nul_byte_in_a_username_is_a_400_naming_the_field(api, team, coordinator) -> None:
    # Was a 500: PostgreSQL cannot compare text with a NUL.
    response = api(coordinator).post(
        "/api/v1/memberships/", {"team": team.pk, "username": "a\x00b", "role": "viewer"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "username": ["must not contain control characters (such as NUL)."]
    }
    assert Membership.objects.filter(team=team).count() == 1


@pytest.mark.parametrize(
    "text", ["\\u0000", "a\\u0007b", "\\u001b[31m", "\\u007f", "\\u0085", "\\ud800"]
)
def test_control_characters_are_refused_in_every_text_field_at_any_depth(
    api, clinician, text
) -> None:
    # As JSON escapes: a lone surrogate (\ud800) has no UTF-8 form, and no database
    # can store it either.
    body = (
        '{"protocol": "all-rez-bfm-90", "em_sites": ["cns", "' + text + '"], '
        '"implausible_reason": "' + text + '"}'
    )
    response = post_raw(api(clinician), STRATIFY, body, "application/json")
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert fields == {
        "em_sites.1": ["must not contain control characters (such as NUL)."],
        "implausible_reason": ["must not contain control characters (such as NUL)."],
    }


def test_a_control_character_in_a_key_is_named_escaped(api, clinician) -> None:
    response = api(clinician).post(STRATIFY, {"prot\x00ocol": "x"})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["prot\\x00ocol"]


def test_tabs_and_line_breaks_stay_allowed_in_notes(
    api, team, clinician, make_course, make_alert
) -> None:
    alert = make_alert(make_course(team, clinician))
    response = api(clinician).post(
        f"/api/v1/alerts/{alert.pk}/acknowledge/", {"note": "line 1\r\n\tline 2"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["acknowledge_note"] == "line 1\r\n\tline 2"


def test_nan_and_infinity_are_not_json(api, clinician) -> None:
    for constant in ("NaN", "Infinity", "-Infinity"):
        body = '{"protocol": "all-rez-bfm-90", "bm_blast_percent": ' + constant + "}"
        response = post_raw(api(clinician), STRATIFY, body, "application/json")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "parse_error"


def test_a_viewer_gets_the_same_answers(api, team, member) -> None:
    viewer = member(team, Role.VIEWER)
    response = post_raw(api(viewer), STRATIFY, b"{}", "application/json; charset=rot13")
    assert response.status_code == 415
