"""The course page: the header with the decision and its reasons, the Gantt timeline,
the records, the alerts and their forms, the moves; and the actions posted from it."""

from __future__ import annotations

from datetime import date

import pytest

from courses.models import CourseTransition, State, TreatmentCourse
from notifications.models import Alert, AlertKind, AlertState

pytestmark = pytest.mark.django_db


def test_the_header_shows_reference_protocol_group_state_and_the_decision_with_its_sources(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = web(clinician).get(f"/courses/{course.pk}/")
    assert response.status_code == 200
    text = parse(response).text
    assert f"Course {course.patient.reference}" in text
    assert "all-rez-bfm-90" in text and "version 1.1" in text
    assert "A confirmed" in text
    assert "Stratified" in text
    for reason in course.decision.reasons:
        assert reason["rule"] in text
        assert reason["source"] in text
    assert f"Confirmed by {clinician.username}" in text


def test_the_timeline_marks_today_and_shows_delays_and_overdue_steps_in_words(
    web, parse, team, clinician, started_course
):
    course = started_course(team, clinician)
    response = web(clinician).get(f"/courses/{course.pk}/")
    html = response.content.decode()
    page = parse(response)
    assert 'class="today-line"' in html and ">today</text>" in html
    assert "timeline-chart" in page.ids
    # The first block was due on the start (14 days ago, 3 days' grace): overdue, with
    # the words in the chart and in the table (not only a colour).
    assert "overdue 14 days" in page.text
    assert "+14 days so far" in page.text
    assert "Alert: HSCT referral missing" in page.text


def test_a_course_without_schedule_says_so_instead_of_a_chart(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False)
    text = parse(web(clinician).get(f"/courses/{course.pk}/")).text
    assert "No schedule yet" in text
    assert "Confirm the stratification" in text


def test_confirming_the_stratification_from_the_course_page_lays_out_the_schedule(
    web, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False)
    response = web(clinician).post(
        f"/courses/{course.pk}/confirm/", {"confirm-risk_group": "A", "confirm-reason": ""}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/courses/{course.pk}/#timeline"
    course.refresh_from_db()
    assert course.state == State.STRATIFIED and course.risk_group == "A"
    assert course.steps.exists()


def test_choosing_another_group_without_a_reason_is_refused_beside_the_field(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False)
    response = web(clinician).post(
        f"/courses/{course.pk}/confirm/", {"confirm-risk_group": "B", "confirm-reason": ""}
    )
    assert response.status_code == 400
    page = parse(response)
    # The service's own words (the API's 400 says the same), beside the reason field.
    assert "is required: the chosen group (B) differs from the proposed one (A)" in page.text
    assert 'id="id_confirm-reason_error"' in response.content.decode()
    course.refresh_from_db()
    assert course.state == State.REGISTERED


def test_a_refused_move_shows_why_and_the_moves_allowed_now(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)  # stratified: only induction or off protocol
    response = web(clinician).post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-other",
            "t-other-transition": "transplant",
            "t-other-version": course.version,
        },
    )
    assert response.status_code == 409
    text = parse(response).text
    assert "Not done: 'transplant' is not possible from state 'stratified'." in text
    allowed = text.split("Moves allowed now:")[1]
    assert "Start induction" in allowed and "Take off protocol" in allowed
    assert TreatmentCourse.objects.get(pk=course.pk).state == State.STRATIFIED


def test_an_allowed_move_is_applied_and_logged(web, team, clinician, make_course):
    course = make_course(team, clinician)
    response = web(clinician).post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-start_induction",
            "t-start_induction-transition": "start_induction",
            "t-start_induction-version": course.version,
        },
    )
    assert response.status_code == 302
    assert TreatmentCourse.objects.get(pk=course.pk).state == State.INDUCTION
    assert CourseTransition.objects.filter(course=course, name="start_induction").exists()


def test_a_move_from_a_stale_page_is_refused_as_the_api_refuses_it(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = web(clinician).post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-start_induction",
            "t-start_induction-transition": "start_induction",
            "t-start_induction-version": course.version - 1,
        },
    )
    assert response.status_code == 409
    assert "someone changed it since you loaded it" in parse(response).text


def test_taking_a_course_off_protocol_needs_the_reasons_and_keeps_what_was_typed(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = web(clinician).post(
        f"/courses/{course.pk}/move/",
        {
            "form_id": "t-take_off_protocol",
            "t-take_off_protocol-transition": "take_off_protocol",
            "t-take_off_protocol-reason": "family moved abroad",
            "t-take_off_protocol-off_protocol_reason": "",
            "t-take_off_protocol-version": course.version,
        },
    )
    assert response.status_code == 409
    html = response.content.decode()
    assert "an off-protocol reason is required" in html
    assert "family moved abroad</textarea>" in html  # never lose what was typed
    assert TreatmentCourse.objects.get(pk=course.pk).state == State.STRATIFIED


def _alert(course, kind=AlertKind.HSCT_REFERRAL_MISSING) -> Alert:  # noqa: ANN001
    return Alert.objects.get(course=course, kind=kind)


def test_acknowledging_an_alert_returns_to_it_on_the_course_page(
    web, team, clinician, started_course
):
    course = started_course(team, clinician)
    alert = _alert(course)
    response = web(clinician).post(
        f"/alerts/{alert.pk}/acknowledge/", {f"alert-{alert.pk}-acknowledge-note": "on it"}
    )
    assert response.status_code == 302
    assert response["Location"] == f"/courses/{course.pk}/#alert-{alert.pk}"
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED and alert.acknowledged_by == clinician
    assert alert.acknowledge_note == "on it"


def test_snoozing_needs_a_reason_as_the_api_does_and_keeps_the_date_typed(
    web, parse, team, clinician, started_course
):
    course = started_course(team, clinician)
    alert = _alert(course)
    prefix = f"alert-{alert.pk}-snooze"
    response = web(clinician).post(
        f"/alerts/{alert.pk}/snooze/", {f"{prefix}-until": "2026-12-01", f"{prefix}-reason": " "}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "is required to snooze an alert." in parse(response).text
    assert f'id="id_{prefix}-reason_error"' in html
    assert 'value="2026-12-01"' in html
    alert.refresh_from_db()
    assert alert.snoozed_until is None

    ok = web(clinician).post(
        f"/alerts/{alert.pk}/snooze/",
        {f"{prefix}-until": "2026-12-01", f"{prefix}-reason": "referral faxed, awaiting reply"},
    )
    assert ok.status_code == 302
    alert.refresh_from_db()
    assert alert.snoozed_until == date(2026, 12, 1)


def test_resolving_needs_a_reason_and_a_resolved_alert_offers_no_more_actions(
    web, parse, team, clinician, started_course
):
    course = started_course(team, clinician)
    alert = _alert(course)
    prefix = f"alert-{alert.pk}-resolve"
    client = web(clinician)
    refused = client.post(f"/alerts/{alert.pk}/resolve/", {f"{prefix}-reason": ""})
    assert refused.status_code == 400
    assert "is required to resolve an alert by hand." in parse(refused).text
    done = client.post(f"/alerts/{alert.pk}/resolve/", {f"{prefix}-reason": "referred by phone"})
    assert done.status_code == 302
    page = parse(client.get(f"/courses/{course.pk}/"))
    assert not [f for f in page.post_forms() if f["action"].startswith(f"/alerts/{alert.pk}/")]
    again = client.post(f"/alerts/{alert.pk}/acknowledge/", {})
    assert again.status_code == 409
    assert "The alert is resolved; 'acknowledge' is not possible now." in parse(again).text


def test_an_htmx_alert_action_answers_the_whole_page_for_htmx_to_select_the_alert(
    web, parse, team, clinician, started_course
):
    # The form's hx-select picks the alert out of the answer: the server needs no
    # separate fragment view, and without JavaScript the same POST works as a form.
    course = started_course(team, clinician)
    alert = _alert(course)
    response = web(clinician).post(
        f"/alerts/{alert.pk}/acknowledge/", {}, HTTP_HX_REQUEST="true", follow=True
    )
    assert response.status_code == 200
    assert f"alert-{alert.pk}" in parse(response).ids
