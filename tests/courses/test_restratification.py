"""A decision goes stale when a fact it read changes, the course shows it and an alert
says so; re-stratification proposes again, a clinician confirms, and the open part of
the schedule follows the new group while everything recorded stays (issue 11)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from django.utils import timezone

from courses import services
from courses.models import AuditEntry, CourseDecision, PlannedStep, TreatmentCourse
from notifications.models import Alert, AlertKind, AlertState
from notifications.services import alerts_sweep
from stratification.models import StratificationDecision

pytestmark = pytest.mark.django_db


def at(time_machine: Any, day: str) -> datetime:
    time_machine.move_to(datetime.fromisoformat(f"{day}T10:00:00+00:00"), tick=False)
    return timezone.now()


def post(client, url, body=None):
    return client.post(url, body or {}, format="json")


def stale_alerts(course) -> list[Alert]:
    return list(
        Alert.objects.filter(course=course, kind=AlertKind.STRATIFICATION_STALE).exclude(
            state=AlertState.RESOLVED
        )
    )


@pytest.fixture
def course_b(time_machine, api, team, clinician, make_patient):
    """A B-lineage late isolated marrow relapse under ALL-REZ BFM 90 (group B, no HSCT),
    confirmed on 2026-09-01 through the API; the first two blocks given."""
    at(time_machine, "2026-09-01")
    client = api(clinician)
    patient = make_patient(team, reference="NORTH-0042")
    relapse = post(
        client,
        "/api/v1/relapses/",
        {
            "patient": patient.pk,
            "relapse_date": "2024-09-01",
            "site": "isolated_bm",
            "bm_blast_percent": 70,
            "relapse_number": 1,
            "prior_hsct": False,
        },
    ).json()
    created = post(
        client, "/api/v1/courses/", {"relapse": relapse["id"], "protocol": "all-rez-bfm-90"}
    )
    assert created.status_code == 201, created.content
    course_id = created.json()["id"]
    confirmed = post(
        client, f"/api/v1/courses/{course_id}/confirm-stratification/", {"risk_group": "B"}
    )
    assert confirmed.json()["risk_group"] == "B"
    post(client, f"/api/v1/courses/{course_id}/transitions/", {"transition": "start_induction"})
    for block_type, day in (("R2", "2026-09-01"), ("R1", "2026-09-23")):
        at(time_machine, day)
        block = post(
            client,
            f"/api/v1/courses/{course_id}/blocks/",
            {"block_type": block_type, "start_date": day},
        )
        assert block.status_code == 201, block.content
    return TreatmentCourse.objects.get(pk=course_id)


def test_a_phenotype_corrected_after_confirmation_is_re_stratified_and_re_laid(
    time_machine, api, clinician, course_b
):
    client = api(clinician)
    url = f"/api/v1/courses/{course_b.pk}/"
    first_decision = course_b.decision_id
    b_steps = {s.key: s for s in PlannedStep.objects.filter(course=course_b)}
    assert {"block_5", "irradiation", "maintenance"} <= b_steps.keys()
    assert "hsct" not in b_steps

    # The marrow report is re-read: the leukaemia is T-lineage.
    at(time_machine, "2026-10-05")
    patched = client.patch(
        f"/api/v1/patients/{course_b.patient_id}/", {"immunophenotype": "T"}, format="json"
    )
    assert patched.status_code == 200, patched.content
    body = client.get(url).json()
    assert body["decision_stale"] is True
    assert body["decision_stale_fields"] == ["immunophenotype"]
    assert body["decision_stale_since"] == "2026-10-05"
    assert (body["risk_group"], body["decision"]["id"]) == ("B", first_decision)
    entry = AuditEntry.objects.get(course=course_b, action="patient_changed")
    assert entry.data["changed"] == {"immunophenotype": ["B", "T"]}
    assert entry.actor == clinician

    # The sweep raises the alert; the old group cannot be confirmed again unchanged.
    alerts_sweep(timezone.now())
    [alert] = stale_alerts(course_b)
    assert (alert.severity, alert.condition_since) == ("high", date(2026, 10, 5))
    assert "immunophenotype" in alert.message and "group B" in alert.message
    refused = post(client, f"{url}confirm-stratification/", {"risk_group": "B"})
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "decision_stale"

    # Re-stratification proposes PPG (a T-lineage marrow relapse); the course keeps B.
    at(time_machine, "2026-10-06")
    restratified = post(client, f"{url}restratify/")
    assert restratified.status_code == 200, restratified.content
    body = restratified.json()
    assert body["decision"]["proposed_group"] == "PPG"
    assert body["decision"]["id"] != first_decision
    assert body["risk_group"] == "B" and body["decision"]["confirmed_at"] is None
    assert (body["decision_awaiting_confirmation"], body["decision_stale"]) == (True, False)
    # The group it follows was confirmed (outcomes and guards keep counting it so).
    assert body["decision_confirmed"] is True
    assert [r["rule"] for r in body["decision"]["reasons"]][1] == "ppg_t_lineage_marrow"
    assert CourseDecision.objects.filter(course=course_b).count() == 2
    old = client.get(f"/api/v1/stratification-decisions/{first_decision}/")
    assert old.status_code == 200
    assert old.json()["input_snapshot"]["immunophenotype"] == "B"
    alerts_sweep(timezone.now())
    [alert] = stale_alerts(course_b)  # still in doubt: nobody confirmed PPG yet
    assert "PPG proposed" in alert.message

    # A clinician confirms PPG: the open steps follow the HSCT template.
    confirmed = post(client, f"{url}confirm-stratification/", {"risk_group": "PPG"})
    assert confirmed.status_code == 200, confirmed.content
    body = confirmed.json()
    assert (body["risk_group"], body["hsct_indicated"], body["state"]) == ("PPG", True, "induction")
    assert body["decision_confirmed"] is True and body["decision_stale_since"] is None
    assert body["decision_awaiting_confirmation"] is False
    # "No HSCT" was confirmed for group B: under PPG it does not carry over silently
    # (issue 22). The schedule follows PPG, and a clinician decides HSCT again.
    review = body["hsct_decision"]["review"]
    assert review["since"] == "2026-10-06"
    assert "group changed from B to PPG" in review["reason"]
    decided = post(
        client,
        f"{url}confirm-hsct/",
        {"hsct_indicated": True, "reason": "T-lineage marrow relapse: HSCT in CR2"},
    )
    assert decided.status_code == 200, decided.content
    assert decided.json()["hsct_decision"]["status"] == "confirmed"
    steps = {s.key: s for s in PlannedStep.objects.filter(course=course_b)}
    # What was recorded stays as it was.
    for key in ("block_1", "block_2"):
        assert (steps[key].status, steps[key].done_on) == (
            "done",
            b_steps[key].done_on,
        )
    assert steps["block_1"].done_on == date(2026, 9, 1)
    # The B-only steps still open are cancelled; the HSCT template's are there.
    for key in ("block_5", "block_6", "irradiation", "maintenance"):
        assert steps[key].status == "cancelled", key
    for key in ("hsct_referral", "mrd_pre_hsct", "hsct"):
        assert steps[key].status == "planned", key
    assert steps["block_3"].block_type == "R3"  # the PPG template's third block
    ordered = sorted(steps.values(), key=lambda s: s.sequence)
    position = {s.key: s.sequence for s in ordered}
    assert all(position[s.anchor_key] < s.sequence for s in ordered if s.anchor_key)
    # The referral counts from the first block, given five weeks ago: due at once.
    assert steps["hsct_referral"].due_on == date(2026, 9, 1)
    assert AuditEntry.objects.filter(
        course=course_b, action="stratification_reconfirmed", data__schedule_relaid=True
    ).exists()
    alerts_sweep(timezone.now())
    assert stale_alerts(course_b) == []
    assert Alert.objects.filter(
        course=course_b, kind=AlertKind.STRATIFICATION_STALE, state=AlertState.RESOLVED
    ).exists()
    # Both decisions are kept; the first one's confirmation (B) included.
    first = StratificationDecision.objects.get(pk=first_decision)
    assert (first.chosen_group, first.proposed_group) == ("B", "B")


def test_a_change_undone_before_re_stratification_is_no_longer_stale(
    time_machine, api, clinician, course_b
):
    client = api(clinician)
    patient_url = f"/api/v1/patients/{course_b.patient_id}/"
    client.patch(patient_url, {"immunophenotype": "T"}, format="json")
    client.patch(patient_url, {"immunophenotype": "B"}, format="json")
    body = client.get(f"/api/v1/courses/{course_b.pk}/").json()
    assert (body["decision_stale"], body["decision_stale_since"]) == (False, None)


def test_a_change_the_decision_did_not_read_leaves_it_current(api, clinician, course_b):
    client = api(clinician)
    response = client.patch(
        f"/api/v1/patients/{course_b.patient_id}/",
        {"frontline_protocol": "ALL IC-BFM 2009", "sex": "female"},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert client.get(f"/api/v1/courses/{course_b.pk}/").json()["decision_stale"] is False
    refused = post(client, f"/api/v1/courses/{course_b.pk}/restratify/")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "decision_current"


def test_a_relapse_change_marks_its_course_stale_and_names_the_fact(api, clinician, course_b):
    client = api(clinician)
    response = client.patch(
        f"/api/v1/relapses/{course_b.relapse_id}/",
        {"site": "combined", "em_sites": ["cns"], "bm_blast_percent": 40},
        format="json",
    )
    assert response.status_code == 200, response.content
    body = client.get(f"/api/v1/courses/{course_b.pk}/").json()
    assert body["decision_stale_fields"] == ["site", "em_sites", "bm_blast_percent"]
    assert AuditEntry.objects.filter(course=course_b, action="relapse_changed").exists()


def test_the_same_group_confirmed_again_keeps_the_schedule(time_machine, api, clinician, course_b):
    client = api(clinician)
    before = list(
        PlannedStep.objects.filter(course=course_b)
        .order_by("sequence")
        .values_list("key", "status", "due_on")
    )
    # BCR::ABL1 and the birth month were not known; now they are: the decision's
    # warnings no longer apply, the group stays.
    client.patch(
        f"/api/v1/patients/{course_b.patient_id}/",
        {"bcr_abl1": "negative", "birth_month": 6},
        format="json",
    )
    stale = client.get(f"/api/v1/courses/{course_b.pk}/").json()["decision_stale_fields"]
    assert stale == ["bcr_abl1", "age_at_diagnosis_months"]
    assert post(client, f"/api/v1/courses/{course_b.pk}/restratify/").status_code == 200
    confirmed = post(
        client, f"/api/v1/courses/{course_b.pk}/confirm-stratification/", {"risk_group": "B"}
    )
    assert confirmed.status_code == 200, confirmed.content
    assert [w["rule"] for w in confirmed.json()["decision"]["warnings"]] == []
    after = list(
        PlannedStep.objects.filter(course=course_b)
        .order_by("sequence")
        .values_list("key", "status", "due_on")
    )
    assert after == before
    entry = AuditEntry.objects.get(course=course_b, action="stratification_reconfirmed")
    assert entry.data["schedule_relaid"] is False


def test_a_registered_course_decided_with_an_older_protocol_version_is_re_stratified(
    api, team, clinician, make_course
):
    course = make_course(team, clinician, confirm=False)
    # A decision stored by version 1.0 (before this version's relabelling): it can no
    # longer be confirmed, and re-stratifying decides it with the loaded version.
    old = StratificationDecision.objects.create(
        input_snapshot=course.decision.input_snapshot,
        protocol_slug="all-rez-bfm-90",
        protocol_version="1.0",
        time_point="early",
        site="isolated_bm",
        proposed_group="A",
        status="assigned",
        hsct_indicated=True,
        reasons=[{"rule": "a_early_marrow", "text": "A", "source": "seed"}],
        created_at=timezone.now(),
    )
    CourseDecision.objects.create(course=course, decision=old, at=timezone.now())
    TreatmentCourse.objects.filter(pk=course.pk).update(decision=old, protocol_version="1.0")
    client = api(clinician)
    url = f"/api/v1/courses/{course.pk}/"
    body = client.get(url).json()
    assert body["decision_outdated"] is True
    assert body["decision"]["reasons"][0]["confidence"] is None  # not recorded then
    assert body["decision"]["warnings"] is None
    refused = post(client, f"{url}confirm-stratification/", {"risk_group": "A"})
    assert refused.status_code == 400
    assert "stratify again" in refused.json()["error"]["fields"]["risk_group"][0]
    restratified = post(client, f"{url}restratify/")
    assert restratified.status_code == 200, restratified.content
    body = restratified.json()
    assert (body["protocol_version"], body["decision"]["protocol_version"]) == ("1.1", "1.1")
    assert body["decision_outdated"] is False
    confirmed = post(client, f"{url}confirm-stratification/", {"risk_group": "A"})
    assert confirmed.status_code == 200, confirmed.content
    assert confirmed.json()["state"] == "stratified"


def test_a_course_decided_before_front_line_status_existed_is_stale_when_it_is_unknown(
    api, team, clinician, make_patient, make_course
):
    # Version 1.0 read "no end date" as a relapse during front-line therapy; the
    # patient's status is now unknown, which is not the same fact.
    patient = make_patient(team, frontline_end_date=None)
    assert patient.frontline_status == "unknown"
    course = make_course(team, clinician, patient=patient, confirm=False)
    snapshot = {**course.decision.input_snapshot}
    del snapshot["frontline_status"]
    from courses.services.facts import changed_facts, relapse_facts

    assert changed_facts(snapshot, relapse_facts(patient, course.relapse)) == ["frontline_status"]


def test_only_writers_re_stratify_and_another_team_sees_nothing(
    api, team, other_team, clinician, viewer, member, course_b
):
    services.patient_update(
        course_b.patient, {"immunophenotype": "T"}, timezone.now(), actor=clinician
    )
    url = f"/api/v1/courses/{course_b.pk}/restratify/"
    assert post(api(viewer), url).status_code == 403
    assert post(api(member(other_team)), url).status_code == 404
    assert (
        api(member(other_team)).get(f"/api/v1/stratification-decisions/{course_b.decision_id}/")
    ).status_code == 404
