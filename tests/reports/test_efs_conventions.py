"""Outcomes that do not flatter (issue 11): EFS from the relapse date; non-response is an
event at time zero; a move to alternative therapy after treatment failure is an event on
its date; withdrawal and loss to follow-up censor; a course entered in error counts
nowhere; a course never confirmed counts when it had an event; a voided record counts
for nothing; everyone else is censored at the last contact, follow-up after therapy
included. One cohort through the API, against Kaplan-Meier values computed by hand."""

from __future__ import annotations

import math
from datetime import date

import pytest

URL = "/api/v1/dashboard/outcomes/"
RELAPSE = date(2025, 1, 10)  # every relapse of the cohort: late marrow relapses, group B

pytestmark = pytest.mark.django_db


def at(time_machine, day: str) -> None:
    time_machine.move_to(f"{day}T10:00:00+00:00", tick=False)


def post(client, url, body):
    response = client.post(url, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def off(client, course, reason: str) -> None:
    post(
        client,
        f"/api/v1/courses/{course.pk}/transitions/",
        {
            "transition": "take_off_protocol",
            "reason": "clinical decision",
            "off_protocol_reason": reason,
        },
    )


def move(client, course, name: str, **extra) -> None:
    post(client, f"/api/v1/courses/{course.pk}/transitions/", {"transition": name, **extra})


@pytest.fixture
def cohort(api, team, clinician, make_patient, make_course, time_machine):
    client = api(clinician)

    def course(confirm: bool = True):
        patient = make_patient(
            team, initial_diagnosis_date=date(2021, 3, 1), frontline_end_date=date(2023, 3, 1)
        )
        return make_course(team, clinician, patient=patient, relapse_date=RELAPSE, confirm=confirm)

    at(time_machine, "2025-01-15")  # therapy begins for everyone confirmed
    refractory, completed, alternative, lost, wrong, revoked = (course() for _ in range(6))
    never_confirmed = course(confirm=False)
    assert never_confirmed.proposed_group == "B" and never_confirmed.risk_group is None
    post(
        client,
        f"/api/v1/courses/{completed.pk}/blocks/",
        {"block_type": "R2", "start_date": "2025-01-15"},
    )
    move(client, completed, "start_induction")

    at(time_machine, "2025-02-01")
    off(client, wrong, "entered_in_error")
    at(time_machine, "2025-02-05")
    # The second induction block: CR2 is judged no earlier than its start + 5 days.
    post(
        client,
        f"/api/v1/courses/{completed.pk}/blocks/",
        {"block_type": "R1", "start_date": "2025-02-05"},
    )
    at(time_machine, "2025-02-10")
    # Died before the group was confirmed: an event (day 30), in its proposed group.
    post(
        client,
        f"/api/v1/courses/{never_confirmed.pk}/events/",
        {"kind": "death", "occurred_on": "2025-02-09"},
    )
    at(time_machine, "2025-02-20")
    death = post(
        client,
        f"/api/v1/courses/{revoked.pk}/events/",
        {"kind": "death", "occurred_on": "2025-02-19"},
    )
    at(time_machine, "2025-03-01")
    # That death was another child's: voided, the course reinstated (day 50).
    post(
        client,
        f"/api/v1/courses/{revoked.pk}/events/{death['id']}/void/",
        {"reason": "wrong patient"},
    )
    post(
        client,
        f"/api/v1/courses/{completed.pk}/assessments/",
        {"assessed_on": "2025-03-01", "marrow": "M1", "cr2": True, "em_status": "none"},
    )
    move(client, completed, "assess_response")
    move(client, completed, "continue_chemotherapy")
    at(time_machine, "2025-04-01")
    off(client, refractory, "refractory")  # no CR2: an event at time zero
    at(time_machine, "2025-04-20")
    off(client, lost, "lost_to_follow_up")  # censored on day 100
    at(time_machine, "2025-05-01")
    move(client, completed, "start_maintenance")
    at(time_machine, "2025-06-01")
    move(client, completed, "complete", reason="maintenance stopped early: toxicity")
    at(time_machine, "2025-07-30")
    off(client, alternative, "treatment_failure_alternative_therapy")  # event, day 201
    at(time_machine, "2026-01-05")
    # After therapy: the last contact, on day 360, is where EFS censors.
    post(
        client,
        f"/api/v1/courses/{completed.pk}/events/",
        {"kind": "follow_up_contact", "occurred_on": "2026-01-05", "contact_status": "alive_in_cr"},
    )
    at(time_machine, "2026-11-24")
    return client


def _greenwood(survival: float, *terms: tuple[int, int]) -> float:
    return survival * math.sqrt(sum(d / (n * (n - d)) for n, d in terms))


def test_efs_counts_events_at_time_zero_and_censors_at_the_last_contact(cohort):
    body = cohort.get(URL).json()
    assert body["method"]["time_origin"].startswith("the relapse date")
    b = next(g for g in body["groups"] if g["group"] == "B")
    # In: refractory (0, event), the unconfirmed death (30, event), the reinstated course
    # (50, censored), lost to follow-up (100, censored), alternative therapy (201,
    # event), completed and followed (360, censored). Out: entered in error.
    assert (b["n"], b["events"], b["censored"]) == (6, 3, 3)
    curve = [
        (p["time_days"], p["survival"], p["se"], p["at_risk"], p["events"], p["censored"])
        for p in b["curve"]
    ]
    # By hand: S(0) = 5/6; S(30) = 5/6 * 4/5; S(201) = 2/3 * 1/2.
    s0, s30, s201 = 5 / 6, 4 / 6, 2 / 6
    se0 = _greenwood(s0, (6, 1))
    se30 = _greenwood(s30, (6, 1), (5, 1))
    se201 = _greenwood(s201, (6, 1), (5, 1), (2, 1))
    assert curve == [
        (0, round(s0, 6), round(se0, 6), 6, 1, 0),
        (30, round(s30, 6), round(se30, 6), 5, 1, 0),
        (50, round(s30, 6), round(se30, 6), 4, 0, 1),
        (100, round(s30, 6), round(se30, 6), 3, 0, 1),
        (201, round(s201, 6), round(se201, 6), 2, 1, 0),
        (360, round(s201, 6), round(se201, 6), 1, 0, 1),
    ]
    assert (round(se0, 6), round(se30, 6), round(se201, 6)) == (0.152145, 0.19245, 0.254588)
    assert b["median_efs_days"] == 201
    assert b["follow_up_max_days"] == 360


def test_the_plot_fits_the_data_and_states_the_reference_horizon(cohort):
    reference = cohort.get(URL).json()["reference"]
    assert reference["horizon_years"] is None
    png = cohort.get(URL, {"format": "png"})
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    svg = cohort.get(URL, {"format": "svg"}).content.decode()
    # A year of follow-up: an axis in months ending at 12, never stretched to 10 years.
    assert "Months from relapse" in svg
    assert "Years from" not in svg
    assert "10-year" not in svg
    assert "Time horizon: not stated by the source" in svg
