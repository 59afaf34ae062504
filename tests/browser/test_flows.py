"""What a team does in the web app, end to end in a real browser (Chromium) against a
live server: each test is one flow a clinician, nurse or coordinator goes through."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from courses import services
from courses.models import BlockAdministration, State, TreatmentCourse
from notifications.models import Alert, AlertKind, AlertState, OutboundEmail
from teams.models import Role

pytestmark = pytest.mark.django_db(transaction=True)


def _alert(course: TreatmentCourse, kind: str) -> Alert:
    return Alert.objects.get(course=course, kind=kind)


def test_sign_in_lands_on_the_worklist(tab, team, clinician):
    t = tab()
    t.page.goto("/")
    expect(t.page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
    expect(t.page.get_by_role("heading", name="Sign in")).to_be_visible()
    t.page.get_by_label("Username").fill(clinician.username)
    t.page.get_by_label("Password").fill("wrong")
    t.page.get_by_role("button", name="Sign in").click()
    expect(t.page.get_by_role("alert")).to_contain_text("Please enter a correct username")
    expect(t.page.get_by_label("Username")).to_have_value(clinician.username)
    t.page.get_by_label("Password").fill("pw")
    t.page.get_by_role("button", name="Sign in").click()
    expect(t.page).to_have_url(t.base_url + "/")
    expect(t.page.get_by_role("heading", name="Worklist", exact=True)).to_be_visible()


def test_the_keyboard_reaches_the_content_first_and_sees_where_it_is(tab, team, clinician):
    t = tab()
    t.sign_in(clinician)
    t.page.keyboard.press("Tab")
    skip = t.page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # shown when focused
    t.page.keyboard.press("Enter")
    expect(t.page.locator("main")).to_be_focused()
    t.page.keyboard.press("Tab")
    focused = t.page.evaluate("document.activeElement.getAttribute('name')")
    assert focused == "protocol"  # the first filter, inside the content
    outline = t.page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring


def test_find_a_course_on_the_worklist_by_reference(
    tab, team, clinician, make_patient, make_course
):
    wanted = make_course(team, clinician, patient=make_patient(team, reference="NORTH-0042"))
    other = make_course(team, clinician, patient=make_patient(team, reference="NORTH-0777"))
    t = tab()
    t.sign_in(clinician)
    results = t.page.locator("#worklist-results")
    expect(results).to_contain_text(other.patient.reference)
    # Typing filters as you type (htmx), partial and case-insensitive.
    t.page.get_by_label("Reference contains").fill("th-004")
    expect(results).not_to_contain_text(other.patient.reference)
    expect(results).to_contain_text("NORTH-0042")
    expect(t.page).to_have_url(re.compile(r"q=th-004"))
    results.get_by_role("link", name="NORTH-0042").first.click()
    expect(t.page.get_by_role("heading", level=1)).to_have_text("Course NORTH-0042")
    expect(t.page).to_have_url(re.compile(rf"/courses/{wanted.pk}/"))


def test_register_patient_relapse_and_course_preview_then_confirm(tab, team, clinician):
    t = tab()
    t.sign_in(clinician)
    page = t.page
    page.get_by_role("link", name="Register a patient").click()
    expect(page.get_by_label("Team")).to_have_count(0)  # one team: never asked
    page.get_by_label("Reference").fill("REG-2026-01")
    page.get_by_label("Birth year").fill("2015")
    page.get_by_label("Sex").select_option("male")
    page.get_by_label("Immunophenotype").select_option("B")
    page.get_by_label("Initial diagnosis date").fill("2022-01-10")
    page.get_by_label("Front-line therapy end date").fill("2024-01-10")
    page.get_by_role("button", name="Save and record the relapse").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Record the relapse of REG-2026-01"
    )
    page.get_by_label("Relapse date").fill("2024-03-01")
    page.get_by_label("Isolated bone marrow").check()
    page.get_by_label("Marrow blasts (%)").fill("80")
    # No relapse of this patient is recorded here: the number and prior HSCT are asked.
    page.get_by_label("Relapse number").select_option("1")
    prior_hsct = page.get_by_role("group", name="HSCT before this relapse?")
    prior_hsct.get_by_label("No", exact=True).check()
    page.get_by_role("button", name="Save and choose the protocol").click()

    expect(page.get_by_role("heading", level=1)).to_contain_text("Open the course of REG-2026-01")
    page.get_by_label("Protocol").select_option("all-rez-bfm-90")
    proposal = page.locator("#proposal")
    expect(proposal).to_contain_text("Group A")
    expect(proposal).to_contain_text("a_early_isolated_marrow")
    expect(proposal).to_contain_text("Tallen")
    assert not TreatmentCourse.objects.exists()  # the preview stores nothing
    expect(page.get_by_label("Risk group to confirm")).to_have_value("A")
    page.get_by_role("button", name="Confirm the group and open the course").click()

    expect(page.get_by_role("status")).to_contain_text("group A confirmed")
    expect(page.get_by_role("heading", level=1)).to_have_text("Course REG-2026-01")
    course = TreatmentCourse.objects.get(patient__reference="REG-2026-01")
    assert course.state == State.STRATIFIED and course.risk_group == "A"
    expect(page.locator("#timeline svg.gantt-chart")).to_be_visible()


def test_record_a_block_and_see_the_overdue_alert_disappear(tab, team, clinician, started_course):
    course = started_course(team, clinician)
    overdue = _alert(course, AlertKind.STEP_OVERDUE)
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/")
    card = t.page.locator(f"#alert-{overdue.pk}")
    expect(card).to_contain_text("Planned step overdue")
    expect(card).to_contain_text("Open")
    t.page.get_by_role("link", name="a block").click()
    started = (timezone.localdate() - timedelta(days=12)).isoformat()
    t.page.get_by_label("Block").fill("R2")
    t.page.get_by_label("Start date").fill(started)
    t.page.get_by_role("button", name="Save").click()

    expect(t.page.get_by_role("status")).to_contain_text("Block recorded.")
    expect(card).to_contain_text("Resolved")
    expect(card).to_contain_text("the condition cleared")
    expect(card.get_by_role("button")).to_have_count(0)
    assert BlockAdministration.objects.filter(course=course).count() == 1
    overdue.refresh_from_db()
    assert overdue.state == AlertState.RESOLVED
    # The worklist no longer lists it.
    t.page.goto("/")
    attention = t.page.locator("section", has=t.page.get_by_role("heading", name="Needs attention"))
    expect(attention).not_to_contain_text("Planned step overdue")
    expect(attention).to_contain_text("HSCT referral missing")


def test_acknowledge_then_snooze_an_alert(tab, team, clinician, started_course):
    course = started_course(team, clinician)
    alert = _alert(course, AlertKind.HSCT_REFERRAL_MISSING)
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/#alert-{alert.pk}")
    card = t.page.locator(f"#alert-{alert.pk}")
    card.get_by_role("button", name="Acknowledge").click()
    expect(card).to_contain_text(f"Acknowledged by {clinician.username}")
    expect(card).to_be_focused()  # focus stays where the action was (htmx swap)

    card.get_by_text("Snooze…").click()
    until = (timezone.localdate() + timedelta(days=7)).isoformat()
    card.get_by_label("Snooze until").fill(until)
    card.get_by_role("button", name=re.compile("^Snooze")).click()
    # The API requires a reason: so does the page, beside the field, keeping the date.
    expect(card.get_by_role("alert")).to_contain_text("is required to snooze an alert.")
    expect(card.get_by_label("Snooze until")).to_have_value(until)
    card.get_by_label("Reason for snoozing").fill("referral faxed, awaiting reply")
    card.get_by_role("button", name=re.compile("^Snooze")).click()
    expect(card).to_contain_text("snoozed until")
    expect(card).to_contain_text("referral faxed, awaiting reply")
    alert.refresh_from_db()
    assert alert.state == AlertState.ACKNOWLEDGED
    assert alert.snoozed_until.isoformat() == until


def test_a_refused_move_shows_its_reason_and_the_allowed_moves(tab, team, clinician, make_course):
    course = make_course(team, clinician)  # stratified
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/")
    moves = t.page.locator("#moves")
    moves.get_by_text("Try another move").click()
    moves.get_by_label("Move to try").select_option("assess_response")
    moves.get_by_role("button", name="Try this move").click()
    refusal = t.page.locator("#refusal")
    expect(refusal).to_contain_text(
        "Not done: 'assess_response' is not possible from state 'stratified'."
    )
    expect(refusal).to_contain_text("Start induction")
    expect(refusal).to_contain_text("Take off protocol")
    expect(refusal).to_be_focused()
    assert TreatmentCourse.objects.get(pk=course.pk).state == State.STRATIFIED


def test_download_the_worklist_as_csv(tab, team, clinician, started_course):
    course = started_course(team, clinician)
    t = tab()
    t.sign_in(clinician)
    with t.page.expect_download() as info:
        t.page.get_by_role("link", name="Download as CSV").click()
    download = info.value
    assert re.fullmatch(r"worklist-\d{4}-\d{2}-\d{2}\.csv", download.suggested_filename)
    with open(download.path(), encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read())))
    mine = [r for r in rows if r["reference"] == course.patient.reference]
    assert {r["section"] for r in mine} == {"needs attention", "due"}


def test_the_calendar_feed_and_a_rotated_token_ends_the_old_one(tab, team, clinician, make_course):
    course = make_course(team, clinician)
    t = tab()
    t.sign_in(clinician, "/calendar/")
    t.page.get_by_role("button", name="Make my calendar address").click()
    old = t.page.get_by_label("Calendar address").input_value()
    assert re.fullmatch(rf"{re.escape(t.base_url)}/calendar/feed/[\w-]+\.ics", old)
    # The calendar app fetches it without any session.
    feed = t.context.request.get(old, headers={"Cookie": ""})
    assert feed.status == 200 and feed.headers["content-type"].startswith("text/calendar")
    body = feed.text()
    assert f"SUMMARY:{course.patient.reference}: " in body
    assert f"/courses/{course.pk}/" in body

    t.page.get_by_role("button", name="Make a new address (ends the old one)").click()
    new = t.page.get_by_label("Calendar address").input_value()
    assert new != old
    assert t.context.request.get(old).status == 404
    assert t.context.request.get(new).status == 200
    t.page.goto("/calendar/")
    t.page.get_by_role("button", name="Revoke my address").click()
    expect(t.page.get_by_role("status")).to_contain_text("revoked")
    assert t.context.request.get(new).status == 404


def test_an_alert_emails_link_opens_its_course_at_the_alert_after_sign_in(
    tab, settings, live_server, team, clinician, started_course
):
    settings.REZCOURSE_BASE_URL = live_server.url
    course = started_course(team, clinician)
    alert = _alert(course, AlertKind.HSCT_REFERRAL_MISSING)
    email = OutboundEmail.objects.get(alert=alert, recipient=clinician.email)
    link = re.search(r"^Alert: (\S+)$", email.body_text, re.MULTILINE).group(1)
    assert link == f"{live_server.url}/courses/{course.pk}/#alert-{alert.pk}"

    t = tab()
    t.page.goto(link)
    expect(t.page.get_by_role("heading", name="Sign in")).to_be_visible()
    t.page.get_by_label("Username").fill(clinician.username)
    t.page.get_by_label("Password").fill("pw")
    t.page.get_by_role("button", name="Sign in").click()
    expect(t.page).to_have_url(link)
    card = t.page.locator(f"#alert-{alert.pk}")
    expect(card).to_be_in_viewport()
    expect(card).to_contain_text("HSCT referral missing")


def test_a_viewer_sees_no_write_controls_and_a_write_from_a_viewer_is_refused(
    tab, team, clinician, member, started_course
):
    course = started_course(team, clinician)
    alert = _alert(course, AlertKind.HSCT_REFERRAL_MISSING)
    viewer = member(team, Role.VIEWER)
    t = tab()
    t.sign_in(viewer, f"/courses/{course.pk}/")
    main = t.page.locator("main")
    expect(main).to_contain_text("HSCT referral missing")
    expect(main.locator("form[method=post]")).to_have_count(0)
    expect(main.get_by_role("button")).to_have_count(0)
    expect(t.page.get_by_role("link", name="Register a patient")).to_have_count(0)
    # Forged from the viewer's own signed-in session, with a valid CSRF token.
    token = next(c["value"] for c in t.context.cookies() if c["name"] == "csrftoken")
    refused = t.context.request.post(
        f"{t.base_url}/alerts/{alert.pk}/acknowledge/",
        form={"csrfmiddlewaretoken": token},
        headers={"Referer": f"{t.base_url}/courses/{course.pk}/"},
        max_redirects=0,
    )
    assert refused.status == 403
    alert.refresh_from_db()
    assert alert.state == AlertState.OPEN


def test_reading_and_the_core_forms_work_with_javascript_off(tab, team, clinician, started_course):
    course = started_course(team, clinician)
    alert = _alert(course, AlertKind.HSCT_REFERRAL_MISSING)
    t = tab(javascript=False)
    t.sign_in(clinician, f"/courses/{course.pk}/")
    expect(t.page.get_by_role("heading", level=1)).to_contain_text(course.patient.reference)
    card = t.page.locator(f"#alert-{alert.pk}")
    card.get_by_role("button", name="Acknowledge").click()
    expect(t.page.locator(f"#alert-{alert.pk}")).to_contain_text("Acknowledged by")
    t.page.goto(f"/courses/{course.pk}/record/block/")
    t.page.get_by_label("Block").fill("R2")
    t.page.get_by_label("Start date").fill((timezone.localdate() + timedelta(days=3)).isoformat())
    t.page.get_by_role("button", name="Save").click()
    expect(t.page.locator(".error-summary")).to_contain_text("must not be in the future")
    expect(t.page.get_by_label("Block")).to_have_value("R2")
    t.page.get_by_label("Start date").fill(timezone.localdate().isoformat())
    t.page.get_by_role("button", name="Save").click()
    expect(t.page.get_by_role("status")).to_contain_text("Block recorded.")
    t.page.goto("/?q=" + course.patient.reference[-4:])
    expect(t.page.locator("#worklist-results")).to_contain_text(course.patient.reference)


def test_the_api_docs_and_the_admin_work_under_the_content_security_policy(tab, django_user_model):
    # The tab fails the test on any CSP violation or JavaScript error it logs.
    django_user_model.objects.create_superuser("root", "root@example.org", "pw")
    t = tab()
    t.page.goto("/admin/login/")
    t.page.get_by_label("Username").fill("root")
    t.page.get_by_label("Password").fill("pw")
    t.page.get_by_role("button", name="Log in").click()
    expect(t.page.get_by_role("heading", name="Site administration")).to_be_visible()
    t.page.goto("/admin/courses/treatmentcourse/")
    expect(t.page.locator("#changelist")).to_be_visible()
    t.page.goto("/api/docs/")
    expect(t.page.locator(".swagger-ui .info")).to_contain_text("rezcourse API")
    t.page.goto("/api/v1/me/")
    expect(t.page.locator("body")).to_contain_text("root")


def test_void_a_block_typed_on_the_wrong_course_and_see_its_step_reopen(
    tab, team, clinician, started_course
):
    course = started_course(team, clinician)
    started = timezone.localdate() - timedelta(days=14)
    block = services.block_record(
        course,
        data={"block_type": "R2", "start_date": started},
        actor=clinician,
        now=timezone.now(),
    )
    t = tab()
    t.sign_in(clinician, f"/courses/{course.pk}/")
    blocks = t.page.get_by_role("table", name="Chemotherapy blocks")
    expect(blocks).to_contain_text("as recorded")
    blocks.get_by_role("link", name=re.compile(r"^Void")).click()
    expect(t.page.get_by_role("heading", level=1)).to_have_text("Void the block")
    t.page.get_by_role("button", name="Void the record").click()
    # The reason is required: said beside the field, nothing voided.
    expect(t.page.locator("#id_reason_error")).to_have_text("is required to void a record.")
    t.page.get_by_label("Why is this record void?").fill("typed on the wrong child's course")
    t.page.get_by_role("button", name="Void the record").click()

    expect(t.page.get_by_role("status")).to_contain_text("The block was voided")
    blocks = t.page.get_by_role("table", name="Chemotherapy blocks")
    expect(blocks).to_contain_text("voided typed on the wrong child's course")
    expect(blocks.get_by_role("link")).to_have_count(0)
    step = course.steps.get(key="block_1")
    expect(t.page.locator(f"#step-{step.pk}")).not_to_contain_text("done")
    block = BlockAdministration.with_voided.get(pk=block.pk)
    assert (block.void_reason, block.voided_by) == ("typed on the wrong child's course", clinician)
    assert not BlockAdministration.objects.filter(course=course).exists()
