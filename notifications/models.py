"""Alerts: derived from the state of the courses by the sweep (notifications.sweep).

An alert is never deleted. At most one unresolved alert exists per (course, kind,
subject) — enforced by a partial unique constraint in the database, so two sweeps on two
workers cannot both open it.
"""

from __future__ import annotations

from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q


class Heartbeat(models.Model):
    """The last time a periodic job ran, so operators (and /healthz) can tell that
    beat and the workers are alive. One row per job name."""

    name = models.CharField(max_length=60, primary_key=True)
    last_seen_at = models.DateTimeField()
    runs = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} @ {self.last_seen_at:%Y-%m-%d %H:%M:%S}"


class AlertKind(models.TextChoices):
    HSCT_REFERRAL_MISSING = "hsct_referral_missing", "HSCT referral missing"
    HSCT_DELAYED = "hsct_delayed", "HSCT delayed"
    MRD_MISSING_BEFORE_HSCT = "mrd_missing_before_hsct", "No MRD before HSCT"
    STEP_OVERDUE = "step_overdue", "Planned step overdue"
    COURSE_STALLED = "course_stalled", "Course stalled"
    STRATIFICATION_STALE = "stratification_stale", "Stratification stale"
    HSCT_DECISION_PENDING = "hsct_decision_pending", "HSCT proposal not decided"
    MRD_DECISION_MISSING = "mrd_decision_missing", "Deciding MRD missing"
    NON_RESPONSE = "non_response", "Non-response"
    MRD_HIGH_BEFORE_HSCT = "mrd_high_before_hsct", "High MRD before HSCT"
    DONOR_SEARCH_STALLED = "donor_search_stalled", "Donor search stalled"
    CUMULATIVE_DELAY = "cumulative_delay", "Cumulative delay"
    HSCT_PROPOSAL_UNCONFIRMED = "hsct_proposal_unconfirmed", "HSCT proposal awaits confirmation"
    STRATIFICATION_UNCONFIRMED = "stratification_unconfirmed", "Stratification awaits confirmation"
    HSCT_DECISION_REVIEW = "hsct_decision_review", "HSCT decision to review"


class Severity(models.TextChoices):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


SEVERITY_RANK = {Severity.LOW: 1, Severity.MEDIUM: 2, Severity.HIGH: 3}


class AlertState(models.TextChoices):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


UNRESOLVED = (AlertState.OPEN, AlertState.ACKNOWLEDGED)


class Resolution(models.TextChoices):
    CONDITION_CLEARED = "condition_cleared", "Condition cleared"
    MANUAL = "manual", "Resolved by hand"
    # The course is no longer active (completed, or off protocol: a death, a second
    # relapse...): nothing on it is watched any more.
    COURSE_ENDED = "course_ended", "Course ended"


class Alert(models.Model):
    course = models.ForeignKey(
        "courses.TreatmentCourse", on_delete=models.PROTECT, related_name="alerts"
    )
    kind = models.CharField(max_length=30, choices=AlertKind.choices)
    # What the alert is about within the course: "course", or "step:<id>".
    subject = models.CharField(max_length=40, default="course")
    severity = models.CharField(max_length=10, choices=Severity.choices)
    state = models.CharField(max_length=14, choices=AlertState.choices, default=AlertState.OPEN)
    message = models.TextField()
    caveat = models.CharField(max_length=200)
    # The clinical date the condition began (e.g. the day the referral became due).
    condition_since = models.DateField()
    opened_at = models.DateTimeField()
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledge_note = models.TextField(blank=True)
    snoozed_until = models.DateField(null=True, blank=True)
    snooze_reason = models.TextField(blank=True)
    escalation_level = models.PositiveSmallIntegerField(default=0)
    escalated_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=20, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    resolve_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["course", "kind", "subject"],
                condition=~Q(state="resolved"),
                name="alert_one_unresolved_per_condition",
            ),
            models.CheckConstraint(
                condition=Q(state="resolved", resolved_at__isnull=False)
                | (~Q(state="resolved") & Q(resolved_at__isnull=True)),
                name="alert_resolved_has_time",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "kind"]),
            models.Index(fields=["course", "state"]),
            # The sweep's escalation candidates: open alerts below the last level, by
            # age (a few rows, not a pass over every unresolved alert).
            models.Index(
                fields=["escalation_level", "opened_at"],
                condition=Q(state="open"),
                name="alert_escalation_candidates",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on course {self.course_id} ({self.state})"


class AlertEvent(models.Model):
    """Append-only history of an alert: opened, escalated, acknowledged, snoozed,
    resolved. Digests report "what changed since the last one" from it."""

    alert = models.ForeignKey(Alert, on_delete=models.PROTECT, related_name="events")
    at = models.DateTimeField()
    action = models.CharField(max_length=20)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]
        indexes = [models.Index(fields=["at"])]

    def __str__(self) -> str:
        return f"{self.action} at {self.at:%Y-%m-%d %H:%M}"


class SweepRun(models.Model):
    """One row per sweep name. The sweep locks its row for its whole transaction, so
    sweeps (periodic and per-course) run one at a time: the second sees the first's
    alerts and opens nothing twice. It also records what the last run did."""

    name = models.CharField(max_length=30, primary_key=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(default=0)
    last_counts = models.JSONField(default=dict)
    runs = models.PositiveBigIntegerField(default=0)
    # The highest course id the dashboards' state (notifications.dashboards) has seen:
    # courses above it were written without the services (a bulk load, the cohort
    # generator) and are refreshed by the next periodic sweep.
    courses_seen_up_to = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} ({self.runs} runs)"


class NotificationPreference(models.Model):
    """How one member of one team hears about that team's alerts. Without a row, the
    defaults a coordinator would choose apply: high severity at once, all in the
    daily digest (see ``effective``)."""

    membership = models.OneToOneField(
        "teams.Membership", on_delete=models.CASCADE, related_name="notification_preference"
    )
    # None: no immediate e-mails.
    immediate_min_severity = models.CharField(
        max_length=10, choices=Severity.choices, null=True, blank=True, default=Severity.HIGH
    )
    digest = models.BooleanField(default=True)
    # A viewer cannot act on an alert: immediate e-mails reach viewers only when they
    # opt in here (then at ``immediate_min_severity``); the digest reaches them anyway.
    # Ignored for clinicians and coordinators, who hear at once by default.
    viewer_immediate_opt_in = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.membership}: immediate>={self.immediate_min_severity}, digest={self.digest}"


DEFAULT_IMMEDIATE_MIN_SEVERITY = Severity.HIGH
DEFAULT_DIGEST = True


class EmailKind(models.TextChoices):
    IMMEDIATE = "immediate"
    DIGEST = "digest"


class EmailStatus(models.TextChoices):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class OutboundEmail(models.Model):
    """The outbox. A row is written in the same transaction as the alert change it
    reports; a worker claims it, sends it outside any transaction and records the
    outcome. ``idempotency_key`` is unique: the same notice for the same recipient
    can be written only once, however often the sweep or a retry runs."""

    team = models.ForeignKey("teams.Team", on_delete=models.PROTECT, related_name="emails")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    recipient = models.EmailField()
    kind = models.CharField(max_length=10, choices=EmailKind.choices)
    alert = models.ForeignKey(
        Alert, null=True, blank=True, on_delete=models.PROTECT, related_name="emails"
    )
    subject = models.CharField(max_length=200)
    body_text = models.TextField()
    body_html = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    status = models.CharField(
        max_length=10, choices=EmailStatus.choices, default=EmailStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    # Set by the worker that claims the row (one token per claim) and checked by every
    # write of that worker: renewing the claim before each message and recording the
    # outcome both must touch the row with this token, so a worker whose claim was
    # taken over neither sends the row nor overwrites the new holder's outcome.
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["recipient", "kind", "created_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.recipient} ({self.status})"


# --- the dashboards' precomputed state (notifications.dashboards) ----------------------


def derived_team() -> models.ForeignKey:
    """The team of a derived row: led by the indexes that use it (no index of its own),
    and without a database constraint (see SummaryFact)."""
    return models.ForeignKey(
        "teams.Team",
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )


class CourseAttention(models.Model):
    """What the worklist shows of one course: one row per active course with at least
    one unresolved alert, written only by :func:`notifications.dashboards.refresh`, in
    the transaction of the alert changes it follows.

    Two sets of aggregates: the alerts *awake* on the team's calendar date of the
    refresh (unresolved and not snoozed past it; the worklist's default), and all
    unresolved ones (``include_snoozed``). A course whose every alert is snoozed has
    no awake aggregates (``priority`` null). ``wake_on`` is the first date one of its
    snoozes ends: the sweep refreshes the row that day.

    ``priority`` is minus the urgency (severity rank plus escalation level), so that
    "most urgent, then oldest condition, then course" is one ascending key, and a
    keyset page is one row comparison an index range-scans."""

    course = models.OneToOneField(
        "courses.TreatmentCourse",
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="attention",
    )
    # The course's team and risk group, copied for the filters: the indexes below lead
    # with the team.
    team = derived_team()
    risk_group = models.CharField(max_length=10, null=True, blank=True)
    priority = models.SmallIntegerField(null=True)
    severity_rank = models.SmallIntegerField(null=True)
    oldest_since = models.DateField(null=True)
    open_alerts = models.PositiveIntegerField(default=0)
    all_priority = models.SmallIntegerField()
    all_severity_rank = models.SmallIntegerField()
    all_oldest_since = models.DateField()
    all_open_alerts = models.PositiveIntegerField()
    wake_on = models.DateField(null=True)
    # The course's first planned step by due date (and sequence).
    next_step = models.ForeignKey(
        "courses.PlannedStep",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # When a refresh last changed the row (a refresh that finds it current leaves it).
    changed_at = models.DateTimeField()

    class Meta:
        indexes = [
            # One team (exact count, keyset pages), then several (the network view).
            models.Index(
                fields=["team", "priority", "oldest_since", "course"],
                condition=Q(priority__isnull=False),
                name="attention_team_order",
            ),
            models.Index(
                fields=["priority", "oldest_since", "course"],
                condition=Q(priority__isnull=False),
                name="attention_order",
            ),
            models.Index(
                fields=["team", "all_priority", "all_oldest_since", "course"],
                name="attention_team_all_order",
            ),
            models.Index(
                fields=["all_priority", "all_oldest_since", "course"], name="attention_all_order"
            ),
            models.Index(
                fields=["wake_on"], condition=Q(wake_on__isnull=False), name="attention_wake"
            ),
        ]

    def __str__(self) -> str:
        return f"attention for course {self.course_id}"


class SummaryFact(models.Model):
    """One thing one course adds to its team's summary counters (an active course in
    its state and risk group, an unresolved alert, one delay value), as of the
    course's last refresh. Kept so that a refresh can take exactly the course's old
    contribution off the counters before adding the new one: the counters are the
    sum of these rows, by construction.

    The dashboards' tables hold derived rows that only ``refresh`` writes, so their
    references to teams, steps and (here) courses carry no database constraint:
    checking one per row at commit costs seconds when a whole cohort is rebuilt."""

    course = models.ForeignKey(
        "courses.TreatmentCourse", on_delete=models.CASCADE, related_name="+", db_constraint=False
    )
    team = derived_team()
    start_date = models.DateField(null=True)
    name = models.CharField(max_length=30)
    key = models.CharField(max_length=80, blank=True)
    value = models.IntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.name} {self.key} {self.value} (course {self.course_id})"


# The start date of the counters that count every course of the team, whatever its
# start (and courses not started yet): no course starts in the year 1.
EVERY_START = date(1, 1, 1)


class SummaryCounter(models.Model):
    """How many facts (SummaryFact) a team has of one name, key and value, per course
    start date, and over every start date (``start_date`` = EVERY_START). The summary
    reads these: one row per distinct value, not one per course or block."""

    team = derived_team()
    start_date = models.DateField()
    name = models.CharField(max_length=30)
    key = models.CharField(max_length=80, blank=True)
    value = models.IntegerField(default=0)
    n = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["team", "start_date", "name", "key", "value"],
                name="summary_counter_unique",
            )
        ]

    def __str__(self) -> str:
        return (
            f"team {self.team_id} {self.start_date}: {self.name} {self.key} {self.value} = {self.n}"
        )
