"""The web app's side of issue 11: the day therapy began on the confirmation, the
clinical date of a move, follow-up on an ended course, and the amend and void pages of a
record (viewers see none). Same services, errors beside their fields, no JavaScript."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses import services
from courses.models import BlockAdministration, ClinicalEvent, CourseTransition, TreatmentCourse

pytestmark = pytest.mark.django_db


def test_the_confirmation_takes_the_day_therapy_began(web, parse, team, clinician, make_course):
    course = make_course(team, clinician, confirm=False)
    client = web(clinician)
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert "confirm-start_date" in page.form(f"/courses/{course.pk}/confirm/", "post")["fields"]
    refused = client.post(
        f"/courses/{course.pk}/confirm/",
        {"confirm-risk_group": "A", "confirm-start_date": "2026-12-01"},
    )
    assert refused.status_code == 400
    assert "must not be in the future (today is 2026-11-24)." in parse(refused).text
    assert 'value="2026-12-01"' in refused.content.decode()  # kept as typed
    done = client.post(
        f"/courses/{course.pk}/confirm/",
        {"confirm-risk_group": "A", "confirm-start_date": "2026-10-05"},
    )
    assert done.status_code == 302
    course.refresh_from_db()
    assert course.start_date == date(2026, 10, 5)
    assert course.steps.get(key="block_1").planned_on == date(2026, 10, 5)


def test_a_move_carries_its_clinical_date(web, parse, team, clinician, make_course, time_machine):
    time_machine.move_to("2026-10-05T10:00:00+00:00", tick=False)
    course = make_course(team, clinician)
    time_machine.move_to("2026-11-24T10:00:00+00:00", tick=False)
    client = web(clinician)
    page = parse(client.get(f"/courses/{course.pk}/"))
    fields = {
        name for f in page.post_forms() if f["action"].endswith("/move/") for name in f["fields"]
    }
    assert "t-start_induction-on" in fields
    early = client.post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-start_induction",
            "t-start_induction-transition": "start_induction",
            "t-start_induction-on": "2026-10-01",
        },
    )
    assert early.status_code == 400
    assert "must not be before the previous move (stratify on 2026-10-05)." in parse(early).text
    done = client.post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-start_induction",
            "t-start_induction-transition": "start_induction",
            "t-start_induction-on": "2026-10-06",
        },
    )
    assert done.status_code == 302
    moved = CourseTransition.objects.get(course=course, name="start_induction")
    assert moved.on == date(2026, 10, 6)
    history = parse(client.get(f"/courses/{course.pk}/")).text
    assert "2026-10-06 Start induction" in history


def test_an_ended_course_takes_follow_up_from_its_page(web, parse, team, clinician, make_course):
    course = make_course(team, clinician)
    services.course_transition(
        course,
        name="take_off_protocol",
        reason="CAR-T after MRD failure",
        off_protocol_reason="treatment_failure_alternative_therapy",
        actor=clinician,
        now=timezone.now(),
    )
    client = web(clinician)
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert "(treatment failure, alternative therapy (e.g. car-t, blinatumomab))" in page.text
    assert f"/courses/{course.pk}/record/follow-up/" in page.links
    assert f"/courses/{course.pk}/record/block/" not in page.links
    form = parse(client.get(f"/courses/{course.pk}/record/follow-up/"))
    assert "Record follow-up" in form.text
    missing = client.post(
        f"/courses/{course.pk}/record/follow-up/",
        {"kind": "follow_up_contact", "occurred_on": "2026-11-24"},
    )
    assert missing.status_code == 400
    assert "is required for a follow-up contact" in parse(missing).text
    done = client.post(
        f"/courses/{course.pk}/record/follow-up/",
        {
            "kind": "follow_up_contact",
            "occurred_on": "2026-11-24",
            "contact_status": "alive_with_disease",
        },
    )
    assert done.status_code == 302
    assert ClinicalEvent.objects.get(course=course).contact_status == "alive_with_disease"
    assert (
        "Follow-up contact: alive with disease" in parse(client.get(f"/courses/{course.pk}/")).text
    )


def test_records_are_amended_and_voided_from_their_pages_and_viewers_see_neither(
    web, parse, team, clinician, viewer, make_course
):
    course = make_course(team, clinician)
    block = services.block_record(
        course,
        data={"block_type": "R2", "start_date": date(2026, 11, 23)},
        actor=clinician,
        now=timezone.now(),
    )
    amend_url = f"/courses/{course.pk}/records/block/{block.pk}/amend/"
    void_url = f"/courses/{course.pk}/records/block/{block.pk}/void/"
    reader = web(viewer)
    assert amend_url not in parse(reader.get(f"/courses/{course.pk}/")).links
    assert reader.get(amend_url).status_code == 403
    assert reader.post(void_url, {"reason": "x"}).status_code == 403

    client = web(clinician)
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert {amend_url, void_url} <= set(page.links)
    form = client.get(amend_url).content.decode()
    assert 'value="2026-11-23"' in form  # what is stored, to correct
    why = {"reason": "began a day later than typed"}
    bad = client.post(amend_url, {"block_type": "R2", "start_date": "2026-11-30", **why})
    assert bad.status_code == 400
    assert "must not be in the future" in parse(bad).text
    assert (
        client.post(amend_url, {"block_type": "R2", "start_date": "2026-11-24", **why}).status_code
        == 302
    )
    assert BlockAdministration.objects.get(pk=block.pk).start_date == date(2026, 11, 24)

    assert client.post(void_url, {"reason": ""}).status_code == 400
    assert client.post(void_url, {"reason": "duplicate entry"}).status_code == 302
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert "voided duplicate entry" in page.text
    assert amend_url not in page.links and void_url not in page.links  # nothing to do on it
    assert TreatmentCourse.objects.get(pk=course.pk).steps.get(key="block_1").status == "planned"
