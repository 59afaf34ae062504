"""Entry safety in the web app (issue 22): a clinical number is read as typed, with a
decimal point or a decimal comma, and what could mean two numbers is refused naming the
field; saving echoes the stored MRD in both units; an amendment says why, and the
course page shows each correction (old -> new, who, when, why). The real-browser side
is tests/browser/test_entry_safety.py."""

from __future__ import annotations

from datetime import date

import pytest
from django import forms as django_forms
from django.utils import timezone

from courses import services
from courses.models import MrdResult, Relapse
from web import forms as web_forms
from web.forms import ClinicalNumberField

pytestmark = pytest.mark.django_db

MRD = {"sampled_on": "2026-11-20", "time_point": "end_of_induction", "unit": "percent"}


def _mrd_url(course) -> str:
    return f"/courses/{course.pk}/record/mrd/"


def test_a_decimal_comma_is_read_as_the_point_and_the_save_echoes_both_units(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    response = web(clinician).post(_mrd_url(course), {**MRD, "value": "0,2"}, follow=True)
    assert response.status_code == 200
    text = parse(response).text
    assert "MRD of 2026-11-20 saved: 2×10⁻³ = 0.2 %." in text
    result = MrdResult.objects.get(course=course)
    assert (result.value, result.entered_unit) == (0.002, "percent")
    # The course's record list reads it in both units too.
    assert "2×10⁻³ = 0.2 %" in text


@pytest.mark.parametrize(
    ("typed", "stored"),
    [("0.2", 0.002), (" 0,2 ", 0.002), (",5", 0.005), ("2e-1", 0.002), ("0,15", 0.0015)],
)
def test_every_way_of_typing_one_number_stores_that_number(
    web, team, clinician, make_course, typed, stored
):
    course = make_course(team, clinician)
    response = web(clinician).post(_mrd_url(course), {**MRD, "value": typed})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert MrdResult.objects.get(course=course).value == stored


@pytest.mark.parametrize(
    ("field", "typed", "label"),
    [
        ("value", "1,000.5", "Measured MRD value"),
        ("value", "1.000,5", "Measured MRD value"),
        ("value", "0,2,5", "Measured MRD value"),
        ("value", "0,2 %", "Measured MRD value"),
        ("value", "10^-3", "Measured MRD value"),
        ("value", "nan", "Measured MRD value"),
        ("sensitivity", "0.000.1", "Sensitivity of the assay"),
    ],
)
def test_a_number_that_could_be_read_two_ways_is_refused_naming_the_field(
    web, parse, team, clinician, make_course, field, typed, label
):
    course = make_course(team, clinician)
    response = web(clinician).post(_mrd_url(course), {**MRD, "value": "0.2", field: typed})
    assert response.status_code == 400
    text = parse(response).text
    # The error summary names the field (its link), then the message; the message
    # sits beside the field too.
    assert f"{label} : “{typed}”" in text
    assert text.count(f"“{typed}”") == 2
    assert "Type it with one decimal separator and no thousands separator, e.g. 0.2 or 0,2" in text
    assert f'value="{typed}"' in response.content.decode()  # what was typed is kept
    assert not MrdResult.objects.exists()


def test_the_marrow_blast_count_takes_a_decimal_comma_too(web, team, clinician, make_patient):
    patient = make_patient(team)
    response = web(clinician).post(
        f"/patients/{patient.pk}/relapses/new/",
        {
            "relapse_date": "2024-03-01",
            "site": "isolated_bm",
            "bm_blast_percent": "87,5",
            "relapse_number": "1",
            "prior_hsct": "no",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Relapse.objects.get(patient=patient).bm_blast_percent == 87.5


def test_every_decimal_field_of_the_web_forms_reads_numbers_one_way():
    # A plain FloatField (or a number input) would bring back Chromium's reading of
    # "0,2" as 2 (issue 22).
    found = []
    for form_class in vars(web_forms).values():
        if isinstance(form_class, type) and issubclass(form_class, django_forms.BaseForm):
            for name, field in form_class.base_fields.items():
                if isinstance(field, django_forms.FloatField | django_forms.DecimalField):
                    assert isinstance(field, ClinicalNumberField), (form_class, name)
                    assert field.widget.input_type == "text", (form_class, name)
                    found.append(name)
    assert {"value", "sensitivity", "bm_blast_percent"} <= set(found)


def test_the_number_box_is_text_with_the_decimal_keypad(web, team, clinician, make_course):
    course = make_course(team, clinician)
    html = web(clinician).get(_mrd_url(course)).content.decode()
    assert 'type="number"' not in html
    for name in ("value", "sensitivity"):
        assert f'<input type="text" name="{name}" inputmode="decimal"' in html


def _entered_in_percent(course, clinician, value: float) -> MrdResult:
    return services.mrd_record(
        course,
        data={
            "sampled_on": date(2026, 11, 20),
            "time_point": "end_of_induction",
            "unit": "percent",
            "value": value,
        },
        actor=clinician,
        now=timezone.now(),
    )


def test_an_amendment_needs_a_reason_and_the_course_page_shows_old_new_who_when_why(
    web, parse, team, clinician, make_course
):
    course = make_course(team, clinician)
    result = _entered_in_percent(course, clinician, 2)  # the report said 0,2 %
    client = web(clinician)
    amend = f"/courses/{course.pk}/records/mrd/{result.pk}/amend/"
    # The amend page starts from the result as it was typed: 2, in percent.
    page = client.get(amend).content.decode()
    assert '<input type="text" name="value" value="2" inputmode="decimal"' in page
    assert (
        '<input type="radio" name="unit" value="percent" required id="id_unit_1" checked>' in page
    )
    form = {**MRD, "value": "0,2", "method": "RQ-PCR", "qualitative": "", "sensitivity": ""}

    refused = client.post(amend, {**form, "reason": ""})
    assert refused.status_code == 400
    assert "is required to amend a record (value changed)" in parse(refused).text
    assert 'id="id_reason_error"' in refused.content.decode()  # beside its box
    assert MrdResult.objects.get(pk=result.pk).value == 0.02

    done = client.post(amend, {**form, "reason": "typed 2 for 0,2 % (flow report)"}, follow=True)
    assert done.status_code == 200
    text = parse(done).text
    assert "The MRD result was amended: 2×10⁻³ = 0.2 % (was 2×10⁻² = 2 %)" in text
    assert MrdResult.objects.get(pk=result.pk).value == 0.002
    # On the course's records: each correction, old -> new, who, when, why.
    assert "Amended 24 Nov 2026 11:00 by " + clinician.username in text
    assert "Value 2×10⁻² = 2 % → 2×10⁻³ = 0.2 %" in text
    assert "Why: typed 2 for 0,2 % (flow report)" in text


def test_an_amendment_that_changes_nothing_says_so(web, parse, team, clinician, make_course):
    course = make_course(team, clinician)
    result = _entered_in_percent(course, clinician, 0.2)
    form = {**MRD, "value": "0.2", "method": "RQ-PCR", "qualitative": "", "sensitivity": ""}
    response = web(clinician).post(
        f"/courses/{course.pk}/records/mrd/{result.pk}/amend/", {**form, "reason": ""}, follow=True
    )
    assert "Nothing changed: the MRD result is as it was." in parse(response).text
    assert MrdResult.objects.get(pk=result.pk).amended_at is None
