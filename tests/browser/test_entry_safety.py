"""Typing a clinical number in the web app, in a real browser: what is typed is what is
stored, whatever decimal separator the clinician's keyboard uses, and the page echoes
the stored value in both units."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from courses.models import MrdResult

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_decimal_comma_in_percent_is_stored_as_that_fraction_and_echoed_in_both_units(
    tab, team, clinician, started_course
):
    course = started_course(team, clinician, days_ago=40)
    sampled = timezone.localdate() - timedelta(days=3)
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/record/mrd/")
    page = t.page
    page.get_by_label("Sampled on").fill(sampled.isoformat())
    page.get_by_label("Time point").select_option("end_of_induction")
    page.get_by_label("percent").check()
    # A German keyboard's "0,2": Chromium's number input once read it as "02" (2 %).
    page.get_by_label("Measured MRD value").press_sequentially("0,2")
    page.get_by_role("button", name="Save").click()

    expect(page.get_by_role("status")).to_contain_text(
        f"MRD of {sampled.isoformat()} saved: 2×10⁻³ = 0.2 %"
    )
    result = MrdResult.objects.get(course=course)
    assert result.value == 0.002
    assert result.entered_unit == "percent"
    records = page.locator("#records")
    expect(records).to_contain_text("2×10⁻³ = 0.2 %")
