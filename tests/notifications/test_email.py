"""Alert e-mails through the outbox, delivered to a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from notifications import services
from notifications.email import delivery, digests
from notifications.models import AlertKind, EmailStatus, OutboundEmail
from teams.models import Role
from tests.conftest import run_concurrently
from tests.notifications.conftest import SmtpServer, free_port, pending_emails, unresolved

pytestmark = pytest.mark.django_db


@pytest.fixture
def course(clock, team, clinician, make_course):  # noqa: ANN001, ANN201
    team.distribution_email = "study-office@example.org"
    team.save()
    return make_course(team, clinician)  # group A, HSCT indicated


NOTHING_DONE = {"sent": 0, "retry": 0, "failed": 0, "skipped": 0, "released": 0}


def drain() -> dict[str, int]:
    return delivery.drain(timezone.now)


def test_an_opened_high_alert_reaches_the_team_by_smtp(clock, sweep, course, clinician, smtp):
    clock("2026-12-08")
    sweep()
    rows = OutboundEmail.objects.filter(alert__kind=AlertKind.HSCT_REFERRAL_MISSING)
    assert sorted(rows.values_list("recipient", flat=True)) == sorted(
        [clinician.email, "study-office@example.org"]
    )
    assert drain()["sent"] == rows.count() + OutboundEmail.objects.exclude(pk__in=rows).count()
    messages = [m for m in smtp.handler.messages() if "HSCT referral missing" in m["Subject"]]
    assert len(messages) == 2
    message = messages[0]
    reference = course.patient.reference
    assert message["Subject"] == (f"[rezcourse] HIGH: HSCT referral missing - course {reference}")
    assert message["Auto-Submitted"] == "auto-generated"
    assert message["Message-ID"].endswith("@rezcourse.invalid>")
    parts = {p.get_content_type(): p.get_content() for p in message.iter_parts()}
    assert set(parts) == {"text/plain", "text/html"}
    assert reference in parts["text/plain"] and "timely HSCT referral" in parts["text/plain"]
    # The link opens the web app's course page at the alert (not the JSON API).
    assert f"/courses/{course.pk}/#alert-{rows[0].alert_id}" in parts["text/html"]
    recipients = {
        e.rcpt_tos[0] for e in smtp.handler.envelopes if b"HSCT referral missing" in e.content
    }
    assert recipients == {clinician.email, "study-office@example.org"}
    assert set(rows.values_list("status", flat=True)) == {EmailStatus.SENT}


def test_preferences_decide_who_hears_at_once(api, clock, sweep, team, course, clinician, member):
    quiet = member(team, Role.VIEWER)
    eager = member(team, Role.COORDINATOR)
    for user, body in [
        (quiet, {"immediate_min_severity": None}),
        (eager, {"immediate_min_severity": "medium"}),
    ]:
        membership = user.memberships.get(team=team)
        response = api(user).patch(
            f"/api/v1/notification-preferences/{membership.pk}/", body, format="json"
        )
        assert response.status_code == 200, response.content
    clock("2026-12-08")
    sweep()
    overdue = OutboundEmail.objects.filter(alert__kind=AlertKind.STEP_OVERDUE)
    assert set(overdue.values_list("recipient", flat=True)) == {eager.email}
    high = OutboundEmail.objects.filter(alert__kind=AlertKind.HSCT_REFERRAL_MISSING)
    assert quiet.email not in set(high.values_list("recipient", flat=True))


def test_a_second_sweep_writes_no_second_email_but_an_escalation_does(
    clock, sweep, course, time_machine
):
    clock("2026-12-08")
    sweep()
    first = OutboundEmail.objects.count()
    sweep()
    assert OutboundEmail.objects.count() == first
    time_machine.move_to("2026-12-09T10:00:00+00:00", tick=False)
    sweep()
    escalated = OutboundEmail.objects.filter(subject__contains="escalated, level 1")
    assert escalated.exists()
    # An escalated medium alert now reaches those who hear about high ones.
    assert escalated.filter(alert__kind=AlertKind.STEP_OVERDUE).exists()


def test_smtp_down_then_up_delivers_every_message_exactly_once(
    clock, sweep, course, settings, time_machine
):
    server = SmtpServer(settings_port := _configure_smtp(settings))
    clock("2026-12-08")
    sweep()  # nothing listens on the port yet: SMTP is down
    total = OutboundEmail.objects.count()
    assert total > 0
    for minutes in (0, 1, 3, 7, 15, 31, 61):  # an outage of an hour, drains on beat
        time_machine.move_to(
            f"2026-12-08T{10 + minutes // 60:02d}:{minutes % 60:02d}:30+00:00", tick=False
        )
        counts = drain()
        assert counts["sent"] == 0
    rows = OutboundEmail.objects.all()
    assert set(rows.values_list("status", flat=True)) == {EmailStatus.PENDING}
    assert all(r.attempts >= 5 and r.last_error for r in rows)
    server.start()
    try:
        time_machine.move_to("2026-12-08T13:00:00+00:00", tick=False)
        assert drain()["sent"] == total
        time_machine.move_to("2026-12-08T14:00:00+00:00", tick=False)
        assert drain() == NOTHING_DONE
        ids = [m["Message-ID"] for m in server.handler.messages()]
        assert len(ids) == total == len(set(ids))
    finally:
        server.stop()
    assert settings_port


def _configure_smtp(settings) -> int:  # noqa: ANN001
    port = free_port()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS, settings.EMAIL_TIMEOUT = False, 5
    return port


def test_a_refused_mailbox_ends_as_failed_and_shows_in_the_api(
    api, clock, sweep, course, coordinator, smtp
):
    smtp.handler.refuse.add("study-office@example.org")
    clock("2026-12-08")
    sweep()
    counts = drain()
    assert counts["failed"] >= 1 and counts["sent"] >= 1
    failed = OutboundEmail.objects.get(
        recipient="study-office@example.org", alert__kind=AlertKind.HSCT_REFERRAL_MISSING
    )
    assert failed.status == EmailStatus.FAILED and "550" in failed.last_error
    client = api(coordinator)
    listed = client.get("/api/v1/outbox/?status=failed").json()["results"]
    assert failed.pk in [row["id"] for row in listed]
    smtp.handler.refuse.clear()
    retried = client.post(f"/api/v1/outbox/{failed.pk}/retry/")
    assert retried.status_code == 200 and retried.json()["status"] == "pending"
    assert drain()["sent"] >= 1
    failed.refresh_from_db()
    assert failed.status == EmailStatus.SENT
    assert client.post(f"/api/v1/outbox/{failed.pk}/retry/").status_code == 409


def test_only_coordinators_retry_and_only_their_teams_mail_is_listed(
    api, clock, sweep, course, clinician, other_team, member, make_course
):
    make_course(other_team, member(other_team, Role.COORDINATOR))
    clock("2026-12-08")
    sweep()
    mine = api(clinician).get("/api/v1/outbox/").json()["results"]
    assert mine and {row["team"] for row in mine} == {course.patient.team_id}
    foreign = OutboundEmail.objects.exclude(team=course.patient.team).first()
    assert foreign is not None, "the other team's alert wrote mail too"
    assert api(clinician).get(f"/api/v1/outbox/{foreign.pk}/").status_code == 404
    assert api(clinician).post(f"/api/v1/outbox/{mine[0]['id']}/retry/").status_code == 403


def test_free_text_typed_by_people_never_reaches_an_email(clock, sweep, course, clinician):
    clock("2026-12-08")
    sweep()
    [alert] = unresolved(course, AlertKind.HSCT_REFERRAL_MISSING)
    services.alert_acknowledge(
        alert, actor=clinician, note="Spoke to Anna's mother", now=timezone.now()
    )
    clock("2026-12-09")
    due = digests.digests_due(timezone.now())
    texts = [digests.render_digest(d) for d in due if not d.empty]
    assert texts
    assert all("Anna" not in part for parts in texts for part in parts)
    assert all(
        "Anna" not in e.body_text + e.body_html + e.subject for e in OutboundEmail.objects.all()
    )


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_two_workers_draining_at_once_deliver_each_message_once(postgres, clock, team, smtp):
    pending_emails(team, 20)
    results = run_concurrently(*[lambda: delivery.drain(timezone.now, batch=3)] * 2)
    assert not [r for r in results if isinstance(r, Exception)]
    assert sum(r["sent"] for r in results) == 20
    assert all(r["sent"] > 0 for r in results), "both workers took part"
    ids = [m["Message-ID"] for m in smtp.handler.messages()]
    assert len(ids) == len(set(ids)) == 20
    assert set(OutboundEmail.objects.values_list("status", flat=True)) == {EmailStatus.SENT}


def test_a_live_claim_is_not_taken_over(clock, sweep, course, smtp, time_machine):
    clock("2026-12-08")
    sweep()
    [held] = delivery.claim(timezone.now(), limit=1)  # a worker holds one row and works
    others = delivery.claim(timezone.now(), limit=100)
    assert others, "the other due rows are claimed"
    assert held.pk not in {e.pk for e in others}
    time_machine.move_to("2026-12-08T10:09:00+00:00", tick=False)  # lease (10 min) running
    assert delivery.drain(timezone.now) == NOTHING_DONE
    row = OutboundEmail.objects.get(pk=held.pk)
    assert (row.status, row.claimed_at) == (EmailStatus.SENDING, held.claimed_at)
    assert delivery.send_claimed([held], timezone.now)["sent"] == 1  # its holder sends it
    assert [m["Message-ID"] for m in smtp.handler.messages()] == [
        delivery.message_id(held.idempotency_key)
    ]


def test_a_stale_claim_is_taken_over_after_the_lease(clock, sweep, course, smtp, time_machine):
    clock("2026-12-08")
    sweep()
    [claimed] = delivery.claim(timezone.now(), limit=1)  # a worker claims, then dies
    time_machine.move_to("2026-12-08T10:11:00+00:00", tick=False)  # lease (10 min) expired
    assert drain()["sent"] == OutboundEmail.objects.count()
    claimed.refresh_from_db()
    assert claimed.status == EmailStatus.SENT
    ids = [m["Message-ID"] for m in smtp.handler.messages()]
    assert ids.count(delivery.message_id(claimed.idempotency_key)) == 1


def test_a_worker_whose_claim_was_taken_over_does_not_send(
    clock, sweep, course, smtp, time_machine
):
    clock("2026-12-08")
    sweep()
    slow = delivery.claim(timezone.now(), limit=100)  # a worker claims, then stalls
    time_machine.move_to("2026-12-08T10:11:00+00:00", tick=False)  # lease (10 min) expired
    fresh = delivery.claim(timezone.now(), limit=100)  # another worker takes them over
    assert {e.pk for e in fresh} == {e.pk for e in slow}
    # The stalled worker wakes up: it renews each claim first, finds it lost, skips.
    counts = delivery.send_claimed(slow, timezone.now)
    assert counts == {**NOTHING_DONE, "skipped": len(slow)}
    assert smtp.handler.envelopes == []
    rows = OutboundEmail.objects.filter(pk__in=[e.pk for e in slow])
    assert {r.claim_token for r in rows} == {fresh[0].claim_token}
    assert delivery.send_claimed(fresh, timezone.now)["sent"] == len(fresh)
    ids = [m["Message-ID"] for m in smtp.handler.messages()]
    assert sorted(ids) == sorted(delivery.message_id(e.idempotency_key) for e in fresh)


def test_marking_a_row_sent_with_a_stale_token_changes_nothing(clock, sweep, course, time_machine):
    clock("2026-12-08")
    sweep()
    [stale] = delivery.claim(timezone.now(), limit=1)
    time_machine.move_to("2026-12-08T10:11:00+00:00", tick=False)
    [holder] = delivery.claim(timezone.now(), limit=1)
    assert holder.pk == stale.pk and holder.claim_token != stale.claim_token
    now = timezone.now()
    assert not delivery.renew(stale, now)
    assert not delivery.finish(stale, status=EmailStatus.SENT, sent_at=now, attempts=1)
    row = OutboundEmail.objects.get(pk=holder.pk)
    assert (row.status, row.claim_token, row.claimed_at, row.sent_at, row.attempts) == (
        EmailStatus.SENDING,
        holder.claim_token,
        holder.claimed_at,
        None,
        0,
    )
    assert delivery.finish(holder, status=EmailStatus.SENT, sent_at=now, attempts=1)
    row.refresh_from_db()
    assert (row.status, row.claim_token) == (EmailStatus.SENT, None)


def messages_so_far(
    smtp: SmtpServer, start: datetime, seconds_each: float
) -> Callable[[], datetime]:
    """A clock that advances ``seconds_each`` with every message the server accepted:
    a server that slow, whatever the test machine's pace."""
    return lambda: start + timedelta(seconds=seconds_each * len(smtp.handler.envelopes))


def test_a_batch_stops_at_a_quarter_of_the_lease_and_hands_the_rest_back(clock, team, smtp):
    pending_emails(team, 10)
    start = timezone.now()
    batch = delivery.claim(start, limit=50)
    deadline = start + timedelta(seconds=150)  # a quarter of the 10-minute lease
    counts = delivery.send_claimed(batch, messages_so_far(smtp, start, 60), deadline)
    assert counts == {**NOTHING_DONE, "sent": 3, "released": 7}  # at 0, 60 and 120 s
    back = OutboundEmail.objects.exclude(status=EmailStatus.SENT)
    assert {(r.status, r.claim_token, r.attempts) for r in back} == {(EmailStatus.PENDING, None, 0)}
    # Handed back at once: another worker claims them now, not after the lease.
    assert {e.pk for e in delivery.claim(timezone.now(), limit=50)} == {r.pk for r in back}


def test_after_a_batch_ran_out_of_time_the_drain_claims_only_what_fitted(clock, team, smtp):
    pending_emails(team, 10)
    counts = delivery.drain(messages_so_far(smtp, timezone.now(), 60))
    # 10 claimed, 3 sent, 7 handed back; then batches of 3, which fit in the time.
    assert counts == {**NOTHING_DONE, "sent": 10, "released": 7}
    ids = [m["Message-ID"] for m in smtp.handler.messages()]
    assert len(ids) == len(set(ids)) == 10


def test_the_smtp_timeout_is_email_timeout_but_at_most_a_tenth_of_the_lease(settings):
    settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS = 600
    settings.EMAIL_TIMEOUT = 30
    assert delivery.smtp_timeout() == 30
    settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS = 20
    assert delivery.smtp_timeout() == 2
    settings.EMAIL_TIMEOUT = None  # Django's default: no timeout at all
    assert delivery.smtp_timeout() == 2


def test_a_server_that_never_answers_holds_the_drain_for_one_timeout(clock, team, settings):
    import socket

    pending_emails(team, 5)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never says a word
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent.getsockname()[1]
        settings.EMAIL_TIMEOUT = 30
        settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS = 3  # the timeout becomes 0.3 s
        started = time.monotonic()
        counts = delivery.drain(timezone.now)
        elapsed = time.monotonic() - started
    assert counts == {**NOTHING_DONE, "retry": 5}
    assert elapsed < 2
    assert all("timed out" in r.last_error for r in OutboundEmail.objects.all())


def test_a_server_that_stalls_before_its_250_times_out_and_the_batch_is_retried(
    clock, team, smtp, settings
):
    pending_emails(team, 5)
    smtp.handler.delay = 2  # the body is in; the 250 comes too late
    settings.EMAIL_TIMEOUT = 0.3
    started = time.monotonic()
    counts = delivery.drain(timezone.now)
    assert time.monotonic() - started < 1.5, "one timeout, not one per message"
    assert counts == {**NOTHING_DONE, "retry": 5}
    rows = OutboundEmail.objects.order_by("id")
    assert "timed out" in rows[0].last_error
    # The server may still accept that first message: it goes again after the backoff,
    # with the same Message-ID (the documented at-least-once window).
    assert all(r.status == EmailStatus.PENDING and r.claim_token is None for r in rows)


def test_a_drain_starts_no_message_after_its_time(clock, team, smtp):
    pending_emails(team, 10)
    counts = delivery.drain(messages_so_far(smtp, timezone.now(), 60), seconds=100)
    assert counts == {**NOTHING_DONE, "sent": 2, "released": 8}  # at 0 and 60 s
    assert OutboundEmail.objects.filter(status=EmailStatus.PENDING, claim_token=None).count() == 8


def test_a_drain_cut_off_mid_message_hands_back_the_rows_it_did_not_reach(clock, team, monkeypatch):
    from celery.exceptions import SoftTimeLimitExceeded
    from django.core.mail.backends.locmem import EmailBackend

    rows = pending_emails(team, 5)
    calls = []

    def send_until_the_time_limit(self: EmailBackend, messages: list) -> int:
        calls.append(messages)
        if len(calls) == 2:
            raise SoftTimeLimitExceeded()  # the task's soft time limit, mid-message
        return len(messages)

    monkeypatch.setattr(EmailBackend, "send_messages", send_until_the_time_limit)
    with pytest.raises(SoftTimeLimitExceeded):
        delivery.drain(timezone.now)
    first, cut, *rest = OutboundEmail.objects.order_by("id")
    assert [first.pk, cut.pk] == [rows[0].pk, rows[1].pk]
    assert first.status == EmailStatus.SENT
    # Its outcome unknown, the interrupted one keeps its claim until the lease ends,
    # as if its worker had died; the others are claimable at once, no attempt counted.
    assert cut.status == EmailStatus.SENDING and cut.claim_token is not None
    assert {(r.status, r.claim_token, r.attempts) for r in rest} == {(EmailStatus.PENDING, None, 0)}


def test_a_drain_task_stops_starting_messages_in_time_for_the_longest_one(settings):
    settings.REZCOURSE_EMAIL_CLAIM_LEASE_SECONDS = 600
    settings.EMAIL_TIMEOUT = 30  # one message: at most 5 x 30 s
    assert delivery.drain_seconds(240) == 90
    settings.EMAIL_TIMEOUT = 60
    assert delivery.drain_seconds(240) == 60  # never less than a quarter of the limit


def test_viewers_get_the_digest_only_unless_they_opt_in(api, clock, sweep, team, course, member):
    from notifications.email.recipients import recipients_for

    watcher = member(team, Role.VIEWER)
    keen = member(team, Role.VIEWER)
    membership = keen.memberships.get(team=team)
    opted = api(keen).patch(
        f"/api/v1/notification-preferences/{membership.pk}/",
        {"viewer_immediate_opt_in": True},
        format="json",
    )
    assert opted.status_code == 200 and opted.json()["immediate_min_severity"] == "high"
    clock("2026-12-08")
    sweep()
    high = OutboundEmail.objects.filter(alert__kind=AlertKind.HSCT_REFERRAL_MISSING)
    heard = set(high.values_list("recipient", flat=True))
    assert keen.email in heard and watcher.email not in heard
    by_user = {r.user_id: r for r in recipients_for([team.pk])[team.pk]}
    assert by_user[watcher.pk].digest and by_user[watcher.pk].immediate_min_severity is None
