"""Sign-in, password reset, throttling, CSRF, the Content-Security-Policy, and that
no page carries inline script or style, or anything identifying a patient."""

from __future__ import annotations

import re
from datetime import date

import pytest
from django.core import mail
from django.test import Client
from django.urls import resolve
from django.utils import timezone

from courses import services as course_services
from notifications.email.notices import links as _links
from notifications.models import Alert

pytestmark = pytest.mark.django_db


def test_signing_in_lands_on_the_worklist(client, clinician):
    response = client.post("/accounts/login/", {"username": clinician.username, "password": "pw"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_wrong_password_says_so_and_keeps_the_username(client, parse, clinician):
    response = client.post("/accounts/login/", {"username": clinician.username, "password": "no"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in parse(response).text
    assert f'value="{clinician.username}"' in response.content.decode()


def test_a_link_to_a_course_comes_back_after_sign_in_with_its_anchor(
    client, team, clinician, started_course
):
    course = started_course(team, clinician)
    alert = Alert.objects.filter(course=course).first()
    link = _links(alert)["alert_url"]
    path = link.removeprefix("http://127.0.0.1:8000")
    assert path == f"/courses/{course.pk}/#alert-{alert.pk}"
    assert resolve(path.split("#")[0]).url_name == "course"
    # The browser sends no fragment: sign-in is asked for the course page...
    first = client.get(path.split("#")[0])
    assert first["Location"] == f"/accounts/login/?next=/courses/{course.pk}/"
    # ...and app.js puts the fragment back into "next", which sign-in honours.
    response = client.post(
        "/accounts/login/",
        {"username": clinician.username, "password": "pw", "next": path},
    )
    assert response["Location"] == path


def test_sign_in_does_not_redirect_elsewhere(client, clinician):
    response = client.post(
        "/accounts/login/",
        {"username": clinician.username, "password": "pw", "next": "https://evil.example/"},
    )
    assert response["Location"] == "/"


def test_signing_out_is_a_post(web, clinician):
    client = web(clinician)
    assert client.get("/accounts/logout/").status_code == 405
    assert client.post("/accounts/logout/")["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_five_wrong_passwords_pause_sign_in_for_that_account_and_address(
    client, clinician, member, team
):
    for _ in range(5):
        client.post("/accounts/login/", {"username": clinician.username, "password": "wrong"})
    locked = client.post("/accounts/login/", {"username": clinician.username, "password": "pw"})
    assert locked.status_code == 429
    assert "Signing in is paused" in locked.content.decode()
    # Another person at the same address is not locked out by someone else's typos.
    colleague = member(team)
    assert (
        Client().post("/accounts/login/", {"username": colleague.username, "password": "pw"})[
            "Location"
        ]
        == "/"
    )


def test_api_tokens_are_untouched_by_the_sign_in_throttling(client, api, clinician):
    for _ in range(6):
        client.post("/accounts/login/", {"username": clinician.username, "password": "wrong"})
    assert api(clinician).get("/api/v1/me/").status_code == 200


def test_password_reset_mails_a_link_and_nothing_about_patients(
    client, team, clinician, make_course
):
    make_course(team, clinician)
    response = client.post("/accounts/password-reset/", {"email": clinician.email})
    assert response["Location"] == "/accounts/password-reset/sent/"
    (message,) = mail.outbox
    assert message.to == [clinician.email]
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", message.body).group(1)
    assert "P-0001" not in message.body
    form = client.get(link, follow=True)
    assert form.status_code == 200
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "a-long-new-password-7", "new_password2": "a-long-new-password-7"},
    )
    assert done["Location"] == "/accounts/reset/done/"
    clinician.refresh_from_db()
    assert clinician.check_password("a-long-new-password-7")


def test_an_unknown_address_gets_the_same_answer_and_no_mail(client):
    response = client.post("/accounts/password-reset/", {"email": "nobody@example.org"})
    assert response["Location"] == "/accounts/password-reset/sent/"
    assert mail.outbox == []


def test_a_mail_server_that_is_down_gets_the_same_answer_not_a_500(
    client, clinician, settings, caplog
):
    import socket

    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", port, 2
    response = client.post("/accounts/password-reset/", {"email": clinician.email})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password-reset/sent/"
    # Django's reset form logs the failure by user id (never the address) and answers
    # as if the mail had left, so the page says nothing about who has an account.
    assert "Failed to send password reset email" in caplog.text
    assert clinician.email not in caplog.text


def test_every_form_needs_the_csrf_token(team, clinician, started_course):
    course = started_course(team, clinician)
    alert = Alert.objects.filter(course=course).first()
    client = Client(enforce_csrf_checks=True)
    client.force_login(clinician)
    for url, data in [
        (f"/alerts/{alert.pk}/acknowledge/", {}),
        (f"/courses/{course.pk}/move/", {"form_id": "t-other", "t-other-transition": "x"}),
        ("/calendar/feed/", {"action": "rotate"}),
        ("/accounts/logout/", {}),
    ]:
        assert client.post(url, data).status_code == 403, url
    alert.refresh_from_db()
    assert alert.state == "open"


def _pages(course, relapse) -> list[str]:  # noqa: ANN001
    return [
        "/",
        f"/courses/{course.pk}/",
        f"/courses/{course.pk}/record/block/",
        f"/courses/{course.pk}/record/assessment/",
        f"/courses/{course.pk}/steps/{course.steps.first().pk}/",
        "/patients/new/",
        f"/relapses/{relapse.pk}/course/?protocol=all-rez-bfm-90",
        "/calendar/",
        "/outcomes/",
        "/courses/999999/",  # the 404 page
    ]


def test_pages_carry_a_strict_csp_and_no_inline_script_style_or_handler(
    web, parse, team, clinician, started_course, make_course, make_patient
):
    course = started_course(team, clinician)
    pending = make_course(team, clinician, confirm=False)
    relapse = course_services.relapse_create(
        patient=make_patient(team),
        data={
            "relapse_date": date(2024, 3, 1),
            "site": "isolated_bm",
            "bm_blast_percent": 80.0,
            "relapse_number": 1,
            "prior_hsct": False,
        },
        now=timezone.now(),
    )
    client = web(clinician)
    urls = [*_pages(course, relapse), f"/courses/{pending.pk}/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code in (200, 404), url
        policy = response["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "style-src 'self'" in policy, url
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, url
        assert "frame-ancestors 'none'" in policy
        page = parse(response)
        assert page.inline_scripts == 0, url
        assert page.style_elements == 0 and page.style_attributes == [], url
        assert page.event_handlers == [], url
        assert page.scripts == ["/static/web/htmx.min.js", "/static/web/app.js"], url
    anonymous = Client().get("/accounts/login/")
    assert "script-src 'self'" in anonymous["Content-Security-Policy"]
    assert parse(anonymous).inline_scripts == 0


def test_htmx_is_served_from_our_own_static_files(client):
    response = client.get("/static/web/htmx.min.js")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert body.startswith(b"var htmx=function()")


def test_pages_name_a_patient_by_reference_only(web, team, clinician, make_patient, make_course):
    patient = make_patient(team, reference="REF-77", birth_year=2013, frontline_protocol="AIEOP")
    course = make_course(team, clinician, patient=patient)
    html = web(clinician).get(f"/courses/{course.pk}/").content.decode()
    assert "REF-77" in html
    # The birth year is stored for the engine, never shown.
    assert "2013" not in html


def test_only_the_apis_own_html_pages_allow_inline_styles_and_none_allows_inline_scripts(
    web, clinician
):
    client = web(clinician)
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    policy = docs["Content-Security-Policy"]
    assert "style-src 'self' 'unsafe-inline'" in policy
    assert "script-src 'self';" in policy + ";" and "unsafe-eval" not in policy
    assert "<script>" not in docs.content.decode()  # the initialiser is a script URL
    script = client.get("/api/docs/?script")
    assert script["Content-Type"].startswith("application/javascript")
    assert "unsafe-inline" not in client.get("/")["Content-Security-Policy"]
