"""The web app and the stratification: the new facts on the registration forms, the
decision's work on the preview and the course page (reasons with confidence, warnings,
cut-off dates), the stale-decision banner with re-stratification for writers, and MRD
entry with its unit (issues 11, 12)."""

from __future__ import annotations

from datetime import date

import pytest
from django.utils import timezone

from courses import services
from courses.models import MrdResult, Patient, PlannedStep, Relapse, TreatmentCourse

pytestmark = pytest.mark.django_db

PATIENT = {
    "reference": "NEW-002",
    "birth_year": "2014",
    "sex": "male",
    "immunophenotype": "B",
    "initial_diagnosis_date": "2022-01-10",
    "frontline_protocol": "AIEOP-BFM ALL 2017",
}
RELAPSE = {
    "relapse_date": "2024-03-01",
    "site": "isolated_bm",
    "bm_blast_percent": "80",
    "relapse_number": "1",
    "prior_hsct": "no",
}


def test_the_patient_and_relapse_forms_take_the_stratification_facts(web, parse, team, clinician):
    client = web(clinician)
    fields = parse(client.get("/patients/new/")).form(None, "post")["fields"]
    assert {"birth_month", "bcr_abl1", "frontline_status", "frontline_end_date"} <= set(fields)
    assert "team" not in fields  # a member of one team is never asked for it
    client.post(
        "/patients/new/",
        {
            **PATIENT,
            "birth_month": "5",
            "bcr_abl1": "negative",
            "frontline_status": "completed",
            "frontline_end_date": "2024-01-10",
        },
    )
    patient = Patient.objects.get(reference="NEW-002")
    assert (patient.birth_month, patient.bcr_abl1, patient.frontline_status) == (
        5,
        "negative",
        "completed",
    )
    relapse_url = f"/patients/{patient.pk}/relapses/new/"
    fields = parse(client.get(relapse_url)).form(None, "post")["fields"]
    assert {"relapse_number", "prior_hsct"} <= set(fields)
    client.post(relapse_url, {**RELAPSE, "relapse_number": "2", "prior_hsct": "no"})
    relapse = Relapse.objects.get(patient=patient)
    assert (relapse.relapse_number, relapse.prior_hsct) == (2, False)


def test_the_relapse_form_offers_unknown_and_asks_for_what_the_records_cannot_say(
    web, parse, team, clinician, make_patient
):
    # Issue 22: no relapse of this patient is recorded here, so neither the number nor
    # prior HSCT can come from the records: the form asks, and "unknown" is an answer.
    client = web(clinician)
    patient = make_patient(team)
    url = f"/patients/{patient.pk}/relapses/new/"
    page = parse(client.get(url))
    assert "No relapse of this patient is recorded here" in page.text
    form = page.form(None, "post")["fields"]
    assert {"relapse_number", "prior_hsct"} <= set(form)
    bare = {k: v for k, v in RELAPSE.items() if k not in ("relapse_number", "prior_hsct")}
    refused = client.post(url, bare)
    assert refused.status_code == 400
    text = parse(refused).text
    assert "no earlier relapse of this patient is recorded here" in text
    assert "no transplant of this patient is recorded here" in text
    assert not Relapse.objects.filter(patient=patient).exists()
    client.post(url, {**bare, "relapse_number": "unknown", "prior_hsct": "unknown"})
    relapse = Relapse.objects.get(patient=patient)
    assert (relapse.relapse_number, relapse.prior_hsct) == (None, None)
    preview = parse(client.get(f"/relapses/{relapse.pk}/course/", {"protocol": "all-rez-bfm-90"}))
    assert "relapse_number_unknown" in preview.text and "prior_hsct_unknown" in preview.text


def test_a_patient_form_without_a_status_follows_the_end_date_and_states_the_rule(
    web, parse, team, clinician
):
    client = web(clinician)
    client.post("/patients/new/", {**PATIENT, "frontline_end_date": "2024-01-10"})
    assert Patient.objects.get(reference="NEW-002").frontline_status == "completed"
    refused = client.post(
        "/patients/new/", {**PATIENT, "reference": "NEW-003", "frontline_status": "completed"}
    )
    assert refused.status_code == 400
    assert "is required when frontline_status is completed." in parse(refused).text


def test_the_preview_shows_why_a_case_needs_review_and_its_warnings(
    web, parse, team, clinician, make_patient
):
    client = web(clinician)
    patient = make_patient(team, bcr_abl1="positive")
    client.post(f"/patients/{patient.pk}/relapses/new/", RELAPSE)
    relapse = Relapse.objects.get(patient=patient)
    text = parse(client.get(f"/relapses/{relapse.pk}/course/", {"protocol": "all-rez-bfm-90"})).text
    assert "No group : needs review" in text
    assert "excluded_bcr_abl1_positive" in text and "needs a tyrosine kinase inhibitor" in text
    # The birth month is not recorded: stratified with a warning, with its confidence.
    assert "age_at_diagnosis_unknown" in text and "inferred" in text
    assert "Very early if the relapse is before 10 Jul 2023" in text


def test_on_therapy_long_after_diagnosis_is_confirmed_on_the_registration_page(
    web, parse, team, clinician, make_patient
):
    client = web(clinician)
    patient = make_patient(
        team,
        initial_diagnosis_date=date(2020, 1, 10),
        frontline_status="on_therapy",
        frontline_end_date=None,
    )
    client.post(f"/patients/{patient.pk}/relapses/new/", RELAPSE)
    relapse = Relapse.objects.get(patient=patient)
    url = f"/relapses/{relapse.pk}/course/"
    page = parse(client.get(url, {"protocol": "all-rez-bfm-2002"}))
    assert "confirm_implausible" in page.form(url, "post")["fields"]
    refused = client.post(
        url, {"protocol": "all-rez-bfm-2002", "risk_group": "", "reason": "", "action": "review"}
    )
    assert refused.status_code == 400
    assert "on_therapy is implausible" in parse(refused).text
    opened = client.post(
        url,
        {
            "protocol": "all-rez-bfm-2002",
            "risk_group": "",
            "reason": "",
            "action": "review",
            "confirm_implausible": "on",
            "implausible_reason": "Maintenance prolonged after an interruption.",
        },
    )
    assert opened.status_code == 302, parse(opened).text[:2000]
    course = TreatmentCourse.objects.get(relapse=relapse)
    assert course.proposed_group == "S3"


def test_the_course_page_shows_the_decisions_reasons_with_confidence_and_cut_offs(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    text = parse(web(clinician).get(f"/courses/{course.pk}/")).text
    assert "a_early_isolated_marrow" in text and "hsct_a" in text
    # Each reason with its source and confidence, as the protocol file labels them.
    assert (
        "A: early isolated marrow relapse. Tallen et al., J Clin Oncol 2010;28:2339 stated" in text
    )
    assert "(Dr.Oracle, 2025) recalled" in text
    assert "Late if the relapse is on or after 10 Jul 2024" in text
    assert "Warning ( bcr_abl1_unknown , inferred): BCR::ABL1 status not given" in text
    assert "stale" not in text.lower()


def test_a_stale_decision_shows_a_banner_and_writers_stratify_again_and_confirm(
    web, parse, team, clinician, viewer, make_course
):
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1))  # group B
    services.patient_update(
        course.patient, {"immunophenotype": "T"}, timezone.now(), actor=clinician
    )
    url = f"/courses/{course.pk}/"
    restratify = f"/courses/{course.pk}/restratify/"
    seen = parse(web(viewer).get(url))
    assert "The decision is stale." in seen.text and "immunophenotype" in seen.text
    assert restratify not in [f["action"] for f in seen.forms]
    assert web(viewer).post(restratify).status_code == 403

    client = web(clinician)
    page = parse(client.get(url))
    assert restratify in [f["action"] for f in page.post_forms()]
    # The stale proposal itself cannot be confirmed: no confirm form is offered.
    assert f"/courses/{course.pk}/confirm/" not in [f["action"] for f in page.forms]
    done = client.post(restratify)
    assert done.status_code == 302
    page = parse(client.get(url))
    assert "Re-stratified: group PPG is proposed" in page.text
    assert "Earlier decisions (1)" in page.text
    confirmed = client.post(
        f"/courses/{course.pk}/confirm/", {"confirm-risk_group": "PPG", "confirm-reason": ""}
    )
    assert confirmed.status_code == 302, parse(confirmed).text[:3000]
    course.refresh_from_db()
    assert (course.risk_group, course.decision_confirmed) == ("PPG", True)
    assert PlannedStep.objects.filter(course=course, kind="hsct").exists()
    assert "The decision is stale." not in parse(client.get(url)).text


def test_the_mrd_form_asks_for_the_unit_and_offers_the_protocols_time_points(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    client = web(clinician)
    url = f"/courses/{course.pk}/record/mrd/"
    html = client.get(url).content.decode()
    assert 'value="percent"' in html and 'value="positive_not_quantifiable"' in html
    assert '<option value="pre_hsct">before HSCT (planned)</option>' in html
    refused = client.post(
        url, {"sampled_on": "2026-11-20", "time_point": "pre_hsct", "value": "0.1"}
    )
    assert refused.status_code == 400
    assert "is required: fraction" in parse(refused).text
    saved = client.post(
        url,
        {
            "sampled_on": "2026-11-20",
            "time_point": "pre_hsct",
            "unit": "percent",
            "value": "0.1",
            "method": "flow cytometry",
        },
    )
    assert saved.status_code == 302, parse(saved).text[:2000]
    assert MrdResult.objects.get().value == 0.001
    negative = client.post(
        url,
        {
            "sampled_on": "2026-11-21",
            "time_point": "pre_hsct",
            "unit": "fraction",
            "qualitative": "negative",
            "sensitivity": "0.0001",
            "method": "RQ-PCR",
        },
    )
    assert negative.status_code == 302
    assert MrdResult.objects.filter(qualitative="negative", value__isnull=True).exists()
