"""Shapes of the dashboard endpoints: the worklist, the summary with its delay
statistics, and the EFS report (dashboard/outcomes).

The report dictionaries are built by the reports' selectors; these serializers
describe them in the OpenAPI schema and parse the query parameters."""

from __future__ import annotations

from config import serializers
from notifications.models import AlertKind, Severity
from reports.outcomes import DEFAULT_PROTOCOL
from stratification.selectors import protocol_get


class OutcomesQuerySerializer(serializers.Serializer):
    team = serializers.IntegerField(
        required=False, min_value=1, help_text="one of your teams (default: all of them)"
    )
    protocol = serializers.CharField(
        required=False,
        default=DEFAULT_PROTOCOL,
        max_length=60,
        help_text="protocol slug; the reference figures are for all-rez-bfm-90",
    )

    def validate_protocol(self, value: str) -> str:
        if protocol_get(value) is None:
            raise serializers.ValidationError("unknown protocol.")
        return value


class KmPointSerializer(serializers.Serializer):
    time_days = serializers.FloatField()
    time_years = serializers.FloatField()
    survival = serializers.FloatField()
    se = serializers.FloatField(allow_null=True, help_text="Greenwood; null once S(t) is 0")
    ci_lower = serializers.FloatField(allow_null=True)
    ci_upper = serializers.FloatField(allow_null=True)
    at_risk = serializers.IntegerField(help_text="followed just before time_days")
    events = serializers.IntegerField(help_text="events at time_days")
    censored = serializers.IntegerField(help_text="censored at time_days")


class EfsEstimateSerializer(serializers.Serializer):
    years = serializers.IntegerField()
    time_days = serializers.FloatField()
    reachable = serializers.BooleanField(help_text="false: follow-up is shorter than this")
    survival = serializers.FloatField(allow_null=True)
    se = serializers.FloatField(allow_null=True)
    ci_lower = serializers.FloatField(allow_null=True)
    ci_upper = serializers.FloatField(allow_null=True)
    at_risk = serializers.IntegerField()


class GroupOutcomeSerializer(serializers.Serializer):
    group = serializers.CharField()
    name = serializers.CharField()
    n = serializers.IntegerField()
    events = serializers.IntegerField()
    censored = serializers.IntegerField()
    median_efs_days = serializers.FloatField(allow_null=True)
    median_efs_years = serializers.FloatField(allow_null=True)
    follow_up_max_days = serializers.FloatField(allow_null=True)
    estimates = EfsEstimateSerializer(many=True)
    curve = KmPointSerializer(many=True)


class MethodSerializer(serializers.Serializer):
    estimator = serializers.CharField()
    standard_error = serializers.CharField()
    confidence_interval = serializers.CharField()
    time_origin = serializers.CharField()
    cohort = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    censoring = serializers.CharField()
    days_per_year = serializers.FloatField()


class ReferenceGroupSerializer(serializers.Serializer):
    group = serializers.CharField()
    efs = serializers.FloatField(help_text="fraction, at the horizon the source gives (if any)")
    efs_se = serializers.FloatField()
    cr2_rate = serializers.FloatField(allow_null=True)


class ReferenceSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    source = serializers.CharField()
    verification = serializers.CharField()
    note = serializers.CharField()
    horizon_years = serializers.IntegerField(
        allow_null=True, help_text="the figures' time horizon as the source states it; null: none"
    )
    horizon = serializers.CharField(help_text="the time horizon in words, as the source gives it")
    groups = ReferenceGroupSerializer(many=True)


class OutcomesSerializer(serializers.Serializer):
    protocol = serializers.CharField()
    team = serializers.IntegerField(allow_null=True)
    as_of = serializers.DateTimeField()
    method = MethodSerializer()
    groups = GroupOutcomeSerializer(many=True)
    reference = ReferenceSerializer(allow_null=True)


class DelayStatSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    median_days = serializers.FloatField(allow_null=True)
    p90_days = serializers.FloatField(allow_null=True)


class DelayStatisticsSerializer(serializers.Serializer):
    """For :func:`reports.delays.delay_statistics` (``.as_dict()``)."""

    hsct_referral = DelayStatSerializer(help_text="clinical start -> HSCT referral")
    cr2_to_transplant = DelayStatSerializer(help_text="first CR2 -> transplant")
    block_delay = DelayStatSerializer(help_text="block done_on - planned_on")


class WorklistQuery(serializers.Serializer):
    team = serializers.IntegerField(required=False, min_value=1)
    risk_group = serializers.CharField(required=False, max_length=10)
    kind = serializers.ChoiceField(choices=AlertKind.choices, required=False)
    include_snoozed = serializers.BooleanField(required=False, default=False)


class WorklistAlert(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=AlertKind.choices)
    severity = serializers.ChoiceField(choices=Severity.choices)
    state = serializers.CharField()
    escalation_level = serializers.IntegerField()
    condition_since = serializers.DateField()
    message = serializers.CharField()


class WorklistRow(serializers.Serializer):
    course = serializers.IntegerField()
    team = serializers.IntegerField()
    course_reference = serializers.CharField()
    state = serializers.CharField()
    risk_group = serializers.CharField(allow_null=True)
    protocol = serializers.CharField()
    severity = serializers.ChoiceField(
        choices=Severity.choices, help_text="highest severity among its alerts"
    )
    urgency = serializers.IntegerField(
        help_text="severity rank (low 1, medium 2, high 3) plus escalation level"
    )
    open_alerts = serializers.IntegerField()
    days_overdue = serializers.IntegerField(
        help_text="days since the oldest of its alert conditions began"
    )
    oldest_since = serializers.DateField()
    next_step = serializers.CharField(allow_null=True)
    next_step_due_on = serializers.DateField(allow_null=True)
    alerts = WorklistAlert(many=True)


class SummaryQuery(serializers.Serializer):
    team = serializers.IntegerField(required=False, min_value=1)
    started_from = serializers.DateField(required=False)
    started_to = serializers.DateField(required=False)

    def validate(self, attrs: dict) -> dict:
        if (
            attrs.get("started_from")
            and attrs.get("started_to")
            and (attrs["started_from"] > attrs["started_to"])
        ):
            raise serializers.ValidationError({"started_to": ["must not be before started_from."]})
        return attrs


class SummaryAnswer(serializers.Serializer):
    teams = serializers.ListField(child=serializers.IntegerField())
    started_from = serializers.DateField(allow_null=True)
    started_to = serializers.DateField(allow_null=True)
    active_courses = serializers.IntegerField()
    active_by_state = serializers.DictField(child=serializers.IntegerField())
    active_by_risk_group = serializers.DictField(child=serializers.IntegerField())
    open_alerts = serializers.IntegerField()
    open_alerts_by_severity = serializers.DictField(child=serializers.IntegerField())
    open_alerts_by_kind = serializers.DictField(
        child=serializers.DictField(child=serializers.IntegerField())
    )
    delays = DelayStatisticsSerializer()
