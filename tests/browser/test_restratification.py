"""A decision gone stale, in a real browser: the clinician sees the banner, stratifies
again, confirms the new group, and the schedule follows it (issue 11)."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from courses import services
from courses.models import PlannedStep, TreatmentCourse

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_stale_decision_is_stratified_again_and_confirmed(tab, team, clinician, make_course):
    course = make_course(team, clinician, relapse_date=date(2024, 9, 1))  # group B
    services.block_record(
        course,
        data={"block_type": "R2", "start_date": timezone.localdate()},
        actor=clinician,
        now=timezone.now(),
    )
    # The diagnosis is corrected: T-lineage ALL.
    services.patient_update(
        course.patient, {"immunophenotype": "T"}, timezone.now(), actor=clinician
    )
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/")
    page = t.page
    banner = page.locator("#stale-decision")
    expect(banner).to_contain_text("The decision is stale.")
    expect(banner).to_contain_text("immunophenotype")
    expect(page.get_by_role("button", name="Confirm stratification")).to_have_count(0)
    page.get_by_role("button", name="Stratify again").click()

    expect(page.get_by_role("status")).to_contain_text("group PPG proposed")
    expect(banner).to_contain_text("Re-stratified: group PPG is proposed")
    expect(banner).to_contain_text("follows group B until a clinician confirms")
    stratification = page.locator("#stratification")
    expect(stratification).to_contain_text("ppg_t_lineage_marrow")
    expect(page.get_by_label("Risk group")).to_have_value("PPG")
    page.get_by_role("button", name="Confirm stratification").click()

    expect(page.get_by_role("status")).to_contain_text("Group PPG confirmed")
    expect(page.locator("#stale-decision")).to_have_count(0)
    expect(page).to_have_url(re.compile(rf"/courses/{course.pk}/#timeline$"))
    expect(page.locator("#timeline")).to_contain_text("Allogeneic HSCT")
    course = TreatmentCourse.objects.get(pk=course.pk)
    assert (course.risk_group, course.hsct_indicated) == ("PPG", True)
    # The block given stays done; group B's irradiation no longer waits.
    steps = {s.key: s.status for s in PlannedStep.objects.filter(course=course)}
    assert (steps["block_1"], steps["irradiation"]) == ("done", "cancelled")
