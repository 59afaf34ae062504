"""CR2 is judged no earlier than the end of induction (Ponte di Legno consensus,
Buchmann et al., Blood 2022; issue 22): a response assessment recorded or amended with
CR2 before the course's end of induction (its protocol's ``end_of_induction``, counted
from the blocks as recorded) is a 400 naming ``cr2``; only CR2 is judged, so an M2 or
M3 marrow before it is recorded. Scenarios through the API with realistic past dates,
each record entered on its clinical date."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest

from courses.models import ResponseAssessment
from courses.selectors import protocol_for
from courses.services import records

pytestmark = pytest.mark.django_db

CR2 = {"marrow": "M1", "cr2": True, "em_status": "none"}


def at(time_machine: Any, day: str) -> None:
    time_machine.move_to(f"{day}T10:00:00+00:00", tick=False)


def post(client: Any, course: Any, kind: str, body: dict) -> Any:
    return client.post(f"/api/v1/courses/{course.pk}/{kind}/", body, format="json")


def recorded(client: Any, course: Any, kind: str, body: dict) -> dict:
    response = post(client, course, kind, body)
    assert response.status_code == 201, response.content
    return response.json()


def refused_on_cr2(response: Any, *, alone: bool = True) -> str:
    """The one message on ``cr2`` of a 400 (``alone``: and no other field; an
    amendment may also be asked for its reason)."""
    assert response.status_code == 400, response.content
    fields = response.json()["error"]["fields"]
    assert (list(fields) == ["cr2"]) if alone else ("cr2" in fields), fields
    [message] = fields["cr2"]
    return message


def amend(client: Any, course: Any, record: dict, **changes: Any) -> Any:
    url = f"/api/v1/courses/{course.pk}/assessments/{record['id']}/"
    return client.patch(url, changes, format="json")


def test_a_bfm2002_cr2_waits_for_f2_and_the_end_of_induction(
    api, team, clinician, make_course, time_machine
):
    # A late isolated marrow relapse (S2), therapy from 2026-03-02: F1, F2 on day 22.
    at(time_machine, "2026-03-02")
    course = make_course(
        team, clinician, protocol="all-rez-bfm-2002", relapse_date=date(2026, 2, 20)
    )
    assert course.risk_group == "S2"
    client = api(clinician)
    recorded(client, course, "blocks", {"block_type": "F1", "start_date": "2026-03-02"})
    at(time_machine, "2026-03-20")

    # Before F2 is recorded the end of induction is not known: the CR2 waits for it.
    early = post(client, course, "assessments", {"assessed_on": "2026-03-20", **CR2})
    message = refused_on_cr2(early)
    assert message == (
        "CR2 is judged no earlier than the end of induction (the start of block F2 + 5 "
        "days, ALL-REZ BFM 2002; Ponte di Legno consensus, Buchmann et al., Blood 2022), "
        "and block F2 is not recorded yet (blocks recorded: F1 on 2026-03-02): record "
        "block F2 first, or record this assessment without CR2."
    )
    # Only CR2 is judged: a marrow not in remission during induction is recorded.
    m2 = post(
        client,
        course,
        "assessments",
        {"assessed_on": "2026-03-20", "marrow": "M2", "cr2": False, "em_status": "none"},
    )
    assert m2.status_code == 201, m2.content

    at(time_machine, "2026-03-27")
    recorded(client, course, "blocks", {"block_type": "F2", "start_date": "2026-03-23"})
    # F2 from 2026-03-23: induction ends 2026-03-28; a CR2 the day before is refused.
    early = post(client, course, "assessments", {"assessed_on": "2026-03-27", **CR2})
    message = refused_on_cr2(early)
    assert message == (
        "CR2 is judged no earlier than the end of induction (2026-03-28: the start of "
        "block F2 + 5 days, ALL-REZ BFM 2002; Ponte di Legno consensus, Buchmann et al., "
        "Blood 2022); this assessment is dated 2026-03-27. Record it without CR2, or date "
        "the CR2 assessment on or after 2026-03-28."
    )
    assert not ResponseAssessment.objects.filter(course=course, cr2=True).exists()

    # On the end of induction and after it (day 42, the template's response day): CR2.
    at(time_machine, "2026-04-13")
    for day in ("2026-03-28", "2026-04-13"):
        made = post(client, course, "assessments", {"assessed_on": day, **CR2})
        assert made.status_code == 201, made.content
    assert ResponseAssessment.objects.filter(course=course, cr2=True).count() == 2


def test_an_amendment_to_a_cr2_before_the_end_of_induction_is_refused(
    api, team, clinician, make_course
):
    # Group A under ALL-REZ BFM 90, therapy from 2026-10-13 (R2); R1 from 2026-11-03
    # is entered later, so induction ends 2026-11-08.
    course = make_course(team, clinician, blocks=(("R2", date(2026, 10, 13)),))
    client = api(clinician)
    m1 = {"marrow": "M1", "cr2": False, "em_status": "none"}
    early = recorded(client, course, "assessments", {"assessed_on": "2026-10-30", **m1})
    # Amended to CR2 with one block recorded: the second must be recorded first.
    message = refused_on_cr2(amend(client, course, early, cr2=True), alone=False)
    assert "the 2nd block is not recorded yet (blocks recorded: R2 on 2026-10-13)" in message
    assert "(the start of the 2nd block + 5 days, ALL-REZ BFM 90;" in message

    recorded(client, course, "blocks", {"block_type": "R1", "start_date": "2026-11-03"})
    message = refused_on_cr2(amend(client, course, early, cr2=True), alone=False)
    assert "(2026-11-08: the start of the 2nd block + 5 days, ALL-REZ BFM 90;" in message
    assert "this assessment is dated 2026-10-30" in message
    # A CR2 on day 42, then its date amended to before the end of induction.
    cr2 = recorded(client, course, "assessments", {"assessed_on": "2026-11-24", **CR2})
    moved = amend(client, course, cr2, assessed_on="2026-11-05")
    assert "this assessment is dated 2026-11-05" in refused_on_cr2(moved, alone=False)
    assert ResponseAssessment.objects.get(pk=cr2["id"]).assessed_on == date(2026, 11, 24)
    assert ResponseAssessment.objects.get(pk=early["id"]).cr2 is False


def test_a_protocol_that_names_no_end_of_induction_is_not_checked(
    api, team, clinician, make_course, monkeypatch
):
    course = make_course(team, clinician)  # no block recorded
    protocol = dataclasses.replace(protocol_for(course.protocol_slug), end_of_induction=None)
    monkeypatch.setattr(records, "protocol_for", lambda slug: protocol)
    made = post(api(clinician), course, "assessments", {"assessed_on": "2026-11-24", **CR2})
    assert made.status_code == 201, made.content
