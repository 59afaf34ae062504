from django.contrib import admin

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
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "last_seen_at", "runs"]
    readonly_fields = ["name", "last_seen_at", "runs"]


@admin.register(SweepRun)
class SweepRunAdmin(admin.ModelAdmin):
    list_display = ["name", "last_started_at", "last_duration_ms", "runs", "last_counts"]
    readonly_fields = list_display


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    readonly_fields = ["at", "action", "actor", "note"]
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-only: alerts are opened and resolved by the sweep, and handled (acknowledge,
    snooze, resolve) through the API, which records who did what."""

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

    def get_readonly_fields(self, request, obj=None):  # noqa: ANN001, ANN201
        return [f.name for f in Alert._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
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

    def get_readonly_fields(self, request, obj=None):  # noqa: ANN001, ANN201
        return [f.name for f in OutboundEmail._meta.fields]

    def has_add_permission(self, request) -> bool:  # noqa: ANN001
        return False

    def has_delete_permission(self, request, obj=None) -> bool:  # noqa: ANN001
        return False

    @admin.action(description="Retry the selected failed e-mails")
    def retry(self, request, queryset) -> None:  # noqa: ANN001
        from django.utils import timezone

        from config.api import Conflict

        done = 0
        for email in queryset:
            try:
                retry_failed(email, timezone.now())
                done += 1
            except Conflict:
                pass
        self.message_user(request, f"{done} e-mail(s) queued again.")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["membership", "immediate_min_severity", "digest"]
    list_select_related = ["membership__user", "membership__team"]
