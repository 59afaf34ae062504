from __future__ import annotations

from config import serializers
from notifications.models import Alert, AlertEvent, OutboundEmail, Severity


class AlertSerializer(serializers.ModelSerializer):
    team = serializers.IntegerField(source="course.patient.team_id", read_only=True)
    course_reference = serializers.CharField(source="course.patient.reference", read_only=True)
    acknowledged_by = serializers.CharField(
        source="acknowledged_by.username", default=None, read_only=True, allow_null=True
    )
    resolved_by = serializers.CharField(
        source="resolved_by.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = Alert
        fields = [
            "id",
            "team",
            "course",
            "course_reference",
            "kind",
            "subject",
            "severity",
            "state",
            "message",
            "caveat",
            "condition_since",
            "opened_at",
            "escalation_level",
            "escalated_at",
            "acknowledged_by",
            "acknowledged_at",
            "acknowledge_note",
            "snoozed_until",
            "snooze_reason",
            "resolved_at",
            "resolution",
            "resolved_by",
            "resolve_reason",
        ]
        read_only_fields = fields


class AlertEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(
        source="actor.username", default=None, read_only=True, allow_null=True
    )

    class Meta:
        model = AlertEvent
        fields = ["at", "action", "actor", "note"]


class AcknowledgeSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class SnoozeSerializer(serializers.Serializer):
    until = serializers.DateField()
    reason = serializers.CharField(max_length=2000, allow_blank=True)


class ResolveSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000, allow_blank=True)


class OutboundEmailSerializer(serializers.ModelSerializer):
    class Meta:
        model = OutboundEmail
        fields = [
            "id",
            "team",
            "kind",
            "recipient",
            "alert",
            "subject",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields


class NotificationPreferenceSerializer(serializers.Serializer):
    membership = serializers.IntegerField(read_only=True)
    team = serializers.IntegerField(read_only=True)
    team_name = serializers.CharField(read_only=True)
    immediate_min_severity = serializers.ChoiceField(
        choices=Severity.choices,
        allow_null=True,
        required=False,
        help_text="e-mail at once for alerts at or above this severity; null: never. A "
        "viewer hears at once only after opting in (viewer_immediate_opt_in); the answer "
        "gives what applies.",
    )
    digest = serializers.BooleanField(required=False, help_text="the team's daily digest")
    viewer_immediate_opt_in = serializers.BooleanField(
        required=False,
        help_text="viewers only: also receive immediate e-mails (by default a viewer, who "
        "cannot act on an alert, gets the digest only)",
    )
