"""Dashboard endpoints: the worklist and the team summary (thin: parse, select, shape)."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.renderers import CsvRenderer, csv_response
from courses.models import TreatmentCourse
from courses.report_serializers import DelayStatisticsSerializer
from notifications import dashboard
from notifications.models import AlertKind, Severity
from teams.selectors import team_ids_for


def _teams(request: Request, team: int | None) -> list[int]:
    """The requester's teams, or the one asked for if it is theirs (404 otherwise: a
    team id of someone else's is "not found", like any other object)."""
    mine = team_ids_for(request.user)
    if team is None:
        return mine
    if team not in mine:
        raise Http404
    return [team]


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


CSV_COLUMNS = [
    "course",
    "team",
    "course_reference",
    "state",
    "risk_group",
    "protocol",
    "severity",
    "urgency",
    "open_alerts",
    "days_overdue",
    "oldest_since",
    "next_step",
    "next_step_due_on",
    "alert_kinds",
]


class WorklistView(GenericAPIView):
    """What needs attention now, one row per course with alerts that are unresolved
    and not snoozed, most urgent first (severity with escalation, then how long the
    oldest condition has held). `?format=csv` exports every matching row."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer]
    serializer_class = WorklistRow
    queryset = TreatmentCourse.objects.none()  # for the schema; rows come from dashboard

    @extend_schema(
        parameters=[WorklistQuery, OpenApiParameter("format", str, enum=["json", "csv"])],
        responses=WorklistRow(many=True),
        examples=[
            OpenApiExample(
                "A course with a missing HSCT referral",
                response_only=True,
                value={
                    "course": 12,
                    "team": 1,
                    "course_reference": "NORTH-0007",
                    "state": "induction",
                    "risk_group": "A",
                    "protocol": "all-rez-bfm-90",
                    "severity": "high",
                    "urgency": 4,
                    "open_alerts": 2,
                    "days_overdue": 6,
                    "oldest_since": "2026-11-18",
                    "next_step": "Block R1",
                    "next_step_due_on": "2026-11-30",
                    "alerts": [],
                },
            )
        ],
        tags=["dashboard"],
    )
    def get(self, request: Request) -> Response:
        query = WorklistQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        today = timezone.localdate()
        groups = dashboard.worklist(
            _teams(request, params.get("team")),
            today,
            kind=params.get("kind"),
            risk_group=params.get("risk_group"),
            include_snoozed=params["include_snoozed"],
        )
        snoozed = params["include_snoozed"]
        if request.accepted_renderer.format == "csv":

            def rows():  # noqa: ANN202 - streamed while the response is sent
                chunk: list[dict] = []
                for group in groups.iterator(chunk_size=1000):
                    chunk.append(group)
                    if len(chunk) == 1000:
                        yield from _csv_rows(dashboard.worklist_rows(chunk, today, snoozed))
                        chunk = []
                yield from _csv_rows(dashboard.worklist_rows(chunk, today, snoozed))

            return csv_response(filename=f"worklist-{today}.csv", header=CSV_COLUMNS, rows=rows())
        page = self.paginate_queryset(groups)
        return self.get_paginated_response(
            WorklistRow(dashboard.worklist_rows(page, today, snoozed), many=True).data
        )


def _csv_rows(rows: list[dict]):  # noqa: ANN202
    for row in rows:
        row["alert_kinds"] = "; ".join(f"{a['kind']} ({a['severity']})" for a in row["alerts"])
        yield [row[c] for c in CSV_COLUMNS]


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


class SummaryView(GenericAPIView):
    """Counts of active courses by state and risk group, open alerts by kind and
    severity, and the median / 90th percentile of HSCT and block delays, for the
    requester's teams (or one of them) and courses started in a date range."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        parameters=[SummaryQuery],
        responses=SummaryAnswer,
        tags=["dashboard"],
    )
    def get(self, request: Request) -> Response:
        query = SummaryQuery(data=request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        data = dashboard.summary(
            _teams(request, params.get("team")),
            started_from=params.get("started_from"),
            started_to=params.get("started_to"),
            today=timezone.localdate(),
        )
        return Response(SummaryAnswer(data).data)
