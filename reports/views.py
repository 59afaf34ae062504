"""The dashboards' endpoints: the worklist, the team summary, the outcomes and one
course's timeline with its alerts (thin: parse, select, shape).

"Today" is each team's own calendar date (:func:`teams.selectors.team_dates`), never
the server's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from config.renderers import CsvRenderer, csv_response
from courses.models import TreatmentCourse
from courses.selectors import courses_for
from reports import outcomes, summary, timeline, worklist
from reports.pagination import KeysetPagination
from reports.plot import PngRenderer, SvgRenderer
from reports.serializers import (
    OutcomesQuerySerializer,
    OutcomesSerializer,
    SummaryAnswer,
    SummaryQuery,
    WorklistQuery,
    WorklistRow,
)
from reports.survival import REFERENCE_FIGURES
from teams.selectors import file_date, team_dates, team_ids_for

ERROR = OpenApiResponse(description="Error in the API's error shape")


def _teams(request: Request, team: int | None) -> list[int]:
    """The requester's teams, or the one asked for if it is theirs (404 otherwise: a
    team id of someone else's is "not found", like any other object)."""
    mine = team_ids_for(request.user)
    if team is None:
        return mine
    if team not in mine:
        raise Http404
    return [team]


def _team_dates(request: Request, team: int | None, now: datetime) -> dict[int, date]:
    """{team_id: that team's today} for the teams in scope (see :func:`_teams`)."""
    dates = team_dates(request.user, now)
    return {team_id: dates[team_id] for team_id in _teams(request, team)}


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
    oldest condition has held). `?format=csv` exports every matching row.

    Pages are keyset pages: follow `next` and `previous` (they carry a `cursor`); there
    are no page numbers. `count` is exact when the answer covers one team
    (`count_exact: true`); for several teams it may be the database's estimate."""

    permission_classes = [IsAuthenticated]
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CsvRenderer]
    serializer_class = WorklistRow
    pagination_class = KeysetPagination
    queryset = TreatmentCourse.objects.none()  # for the schema; rows come from dashboard
    filter_backends: list = []  # its filters are WorklistQuery; no ordering: urgency decides

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
        now = timezone.now()
        dates = _team_dates(request, params.get("team"), now)
        filters = {
            "kind": params.get("kind"),
            "risk_group": params.get("risk_group"),
            "include_snoozed": params["include_snoozed"],
        }
        groups = worklist.worklist(dates, **filters)
        snoozed = params["include_snoozed"]
        # Exact for one team; a network's total may be the planner's estimate.
        matching = worklist.matching(dates, **filters)
        self.paginator.count_rows = lambda _: worklist.count(matching, exact=len(dates) == 1)
        if request.accepted_renderer.format == "csv":

            def rows() -> Iterator[list]:  # streamed while the response is sent
                chunk: list[dict] = []
                for group in groups.iterator(chunk_size=1000):
                    chunk.append(group)
                    if len(chunk) == 1000:
                        yield from _csv_rows(worklist.worklist_rows(chunk, dates, snoozed))
                        chunk = []
                yield from _csv_rows(worklist.worklist_rows(chunk, dates, snoozed))

            return csv_response(
                filename=f"worklist-{file_date(dates, now)}.csv", header=CSV_COLUMNS, rows=rows()
            )
        page = self.paginate_queryset(groups)
        # The rows are already in the answer's shape (WorklistRow describes them for the
        # schema); the JSON renderer writes their dates. No serializer per field: at 50
        # rows with their alerts it cost a quarter of the request.
        return self.get_paginated_response(worklist.worklist_rows(page, dates, snoozed))


def _csv_rows(rows: list[dict]) -> Iterator[list]:
    for row in rows:
        row["alert_kinds"] = "; ".join(f"{a['kind']} ({a['severity']})" for a in row["alerts"])
        yield [row[c] for c in CSV_COLUMNS]


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
        data = summary.summary(
            _teams(request, params.get("team")),
            started_from=params.get("started_from"),
            started_to=params.get("started_to"),
        )
        # Already in the answer's shape (SummaryAnswer describes it for the schema).
        return Response(data)


ALL_REZ_BFM_90 = REFERENCE_FIGURES["all-rez-bfm-90"]
OUTCOMES_EXAMPLE = {
    "protocol": "all-rez-bfm-90",
    "team": None,
    "as_of": "2026-11-24T10:00:00+00:00",
    "method": outcomes.METHOD,
    "groups": [
        {
            "group": "A",
            "name": "Group A",
            "n": 3,
            "events": 1,
            "censored": 2,
            "median_efs_days": None,
            "median_efs_years": None,
            "follow_up_max_days": 400,
            "estimates": [
                {
                    "years": 5,
                    "time_days": 1826.25,
                    "reachable": False,
                    "survival": None,
                    "se": None,
                    "ci_lower": None,
                    "ci_upper": None,
                    "at_risk": 0,
                }
            ],
            "curve": [
                {
                    "time_days": 0,
                    "time_years": 0.0,
                    "survival": 1.0,
                    "se": 0.0,
                    "ci_lower": 1.0,
                    "ci_upper": 1.0,
                    "at_risk": 3,
                    "events": 0,
                    "censored": 0,
                },
                {
                    "time_days": 120,
                    "time_years": 0.3285,
                    "survival": 0.666667,
                    "se": 0.272166,
                    "ci_lower": 0.053933,
                    "ci_upper": 0.945603,
                    "at_risk": 3,
                    "events": 1,
                    "censored": 0,
                },
            ],
        }
    ],
    # The real reference figures, cut to the example's one group.
    "reference": {**ALL_REZ_BFM_90, "groups": ALL_REZ_BFM_90["groups"][:1]},
}


class OutcomesView(APIView):
    """Event-free survival by risk group (Kaplan-Meier) for your teams' courses."""

    renderer_classes = [*api_settings.DEFAULT_RENDERER_CLASSES, PngRenderer, SvgRenderer]

    @extend_schema(
        operation_id="dashboard_outcomes",
        parameters=[
            OutcomesQuerySerializer,
            OpenApiParameter(
                "format",
                str,
                enum=["json", "png", "svg"],
                description="png/svg: the curves as a picture (same data)",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                OutcomesSerializer,
                examples=[OpenApiExample("Group A", value=OUTCOMES_EXAMPLE)],
            ),
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="KM curves"),
            (200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.STR, description="KM curves"),
            400: ERROR,
            404: ERROR,
        },
    )
    def get(self, request: Request) -> Response:
        """EFS from the relapse date, per risk group of the protocol (default
        all-rez-bfm-90): Kaplan-Meier curve with Greenwood standard errors, 95 %
        confidence limits and numbers at risk, the median, this cohort's own estimates
        at 5 and 10 years where its follow-up reaches them, and the published reference
        figures (from the seed article, not verified against the paper's tables; their
        time horizon is not stated by the source). Refractory courses count as events
        at time zero; courses never confirmed count when they had an event; courses
        entered in error and voided records never count (``method`` says it all).
        ``team``: one of your teams (another team's id is 404)."""
        query = OutcomesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        team = query.validated_data.get("team")
        if team is not None and team not in team_ids_for(request.user):
            raise NotFound()
        courses = courses_for(request.user)
        if team is not None:
            courses = courses.filter(patient__team_id=team)
        report = outcomes.efs_report(
            courses,
            protocol_slug=query.validated_data["protocol"],
            team=team,
            now=timezone.now(),
        )
        return Response(report)


class TimelineView(APIView):
    """One course's planned vs actual steps, transitions, records and alerts, in date
    order (another team's course is 404)."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "id",
                int,
                OpenApiParameter.PATH,
                description="A unique integer value identifying this treatment course.",
            )
        ],
        responses=inline_serializer("Timeline", {"entries": serializers.ListField()}),
    )
    def get(self, request: Request, pk: int) -> Response:
        try:
            course = courses_for(request.user).get(pk=pk)
        except TreatmentCourse.DoesNotExist as exc:
            raise Http404 from exc
        return Response(timeline.course_timeline(course))
