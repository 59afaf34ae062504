"""Admin for alerts, e-mails and the jobs' health: read-only, except what a service
writes for the administrator (retrying a failed e-mail, a member's preferences)."""

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from config.admin import ReadOnlyAdmin, ReadOnlyInline
from config.errors import Refused
from notifications import services
from notifications.email import retry_failed
from notifications.models import (
    Alert,
    AlertEvent,
    Heartbeat,
    NotificationPreference,
    OutboundEmail,
    SweepRun,
)


@admin.register(Heartbeat)
class HeartbeatAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_seen_at", "runs"]


@admin.register(SweepRun)
class SweepRunAdmin(ReadOnlyAdmin):
    list_display = ["name", "last_started_at", "last_duration_ms", "runs", "last_counts"]


class AlertEventInline(ReadOnlyInline):
    model = AlertEvent
    fields = ["at", "action", "actor", "note"]
    readonly_fields = fields


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """Alerts are opened and resolved by the sweep, and handled (acknowledge, snooze,
    resolve) through the API, which records who did what."""

    list_display = [
        "id",
        "course",
        "kind",
        "severity",
        "state",
        "condition_since",
        "escalation_level",
        "snoozed_until",
        "opened_at",
    ]
    list_filter = ["state", "kind", "severity", "escalation_level"]
    search_fields = ["course__patient__reference"]
    list_select_related = ["course__patient"]
    inlines = [AlertEventInline]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "recipient",
        "subject",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
    ]
    list_filter = ["status", "kind", "team"]
    search_fields = ["recipient", "subject"]
    actions = ["retry"]

    @admin.action(description="Retry the selected failed e-mails")
    def retry(self, request: HttpRequest, queryset: Any) -> None:
        done = 0
        for email in queryset:
            try:
                retry_failed(email, timezone.now())
                done += 1
            except Refused:
                pass
        self.message_user(request, f"{done} e-mail(s) queued again.")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    """Written through preference_update, as PATCH /api/v1/me/notifications/... does."""

    list_display = ["membership", "immediate_min_severity", "digest"]
    list_select_related = ["membership__user", "membership__team"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["membership"] if obj is not None else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: NotificationPreference, form: forms.Form, change: bool
    ) -> None:
        membership = obj.membership if change else form.cleaned_data["membership"]
        changes = {k: v for k, v in form.cleaned_data.items() if k != "membership"}
        obj.pk = services.preference_update(membership, **changes).pk
