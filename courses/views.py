"""Thin views: parse, call a service or selector, serialize."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet
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
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from config.renderers import CsvRenderer, csv_response
from courses import outcomes, selectors, services
from courses.models import (
    BlockAdministration,
    ClinicalEvent,
    HsctReferral,
    MrdResult,
    Patient,
    PlannedStep,
    Relapse,
    ResponseAssessment,
    State,
    TreatmentCourse,
)
from courses.outcomes_plot import PngRenderer, SvgRenderer
from courses.report_serializers import (
    CourseCsvSerializer,
    OutcomesQuerySerializer,
    OutcomesSerializer,
)
from courses.serializers import (
    AssessmentSerializer,
    AuditEntrySerializer,
    BlockSerializer,
    ConfirmHsctSerializer,
    ConfirmSerializer,
    CourseCreateSerializer,
    CourseSerializer,
    CourseTransitionSerializer,
    EventSerializer,
    MrdSerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    PlannedStepSerializer,
    ReferralSerializer,
    RelapseSerializer,
    StepCreateSerializer,
    StepUpdateSerializer,
    TransitionRequestSerializer,
)
from teams.models import WRITE_ROLES
from teams.permissions import TeamScopedMixin, require_team_role
from teams.selectors import team_ids_for

ERROR = OpenApiResponse(description="Error in the API's error shape")


class PatientViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Patient.objects.all()
    serializer_class = PatientSerializer
    filterset_fields = ["team", "reference", "immunophenotype", "sex"]
    ordering_fields = ["reference", "created_at", "initial_diagnosis_date"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self) -> type:
        return PatientUpdateSerializer if self.action == "partial_update" else PatientSerializer

    def perform_create(self, serializer: PatientSerializer) -> None:
        data = dict(serializer.validated_data)
        team = data.pop("team")
        require_team_role(self.request, team, WRITE_ROLES)
        serializer.instance = services.patient_create(
            team_id=team.pk, data=data, now=timezone.now()
        )

    def perform_update(self, serializer: PatientSerializer) -> None:
        serializer.instance = services.patient_update(
            serializer.instance, serializer.validated_data, timezone.now()
        )


class RelapseViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Relapse.objects.select_related("course")
    serializer_class = RelapseSerializer
    team_lookup = "patient__team"
    filterset_fields = ["patient", "site"]
    ordering_fields = ["relapse_date", "created_at"]

    def perform_create(self, serializer: RelapseSerializer) -> None:
        data = dict(serializer.validated_data)
        patient = data.pop("patient")
        require_team_role(self.request, patient.team_id, WRITE_ROLES)
        serializer.instance = services.relapse_create(
            patient=patient, data=data, now=timezone.now()
        )


class CourseFilter(django_filters.FilterSet):
    team = django_filters.NumberFilter(field_name="patient__team")
    protocol = django_filters.CharFilter(field_name="protocol_slug")
    state = django_filters.MultipleChoiceFilter(choices=State.choices)
    risk_group = django_filters.CharFilter()
    active = django_filters.BooleanFilter(method="filter_active")
    has_open_alerts = django_filters.BooleanFilter(
        method="filter_has_open_alerts", label="has unresolved alerts"
    )

    class Meta:
        model = TreatmentCourse
        fields = ["team", "protocol", "state", "risk_group", "patient", "active", "has_open_alerts"]

    def filter_active(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        closed = [State.COMPLETED, State.OFF_PROTOCOL]
        return queryset.exclude(state__in=closed) if value else queryset.filter(state__in=closed)

    def filter_has_open_alerts(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        # Through the reverse relation only: courses does not import notifications
        # (DESIGN.md), it just reads the alerts that point at its courses.
        unresolved = {"alerts__state__in": ("open", "acknowledged")}
        if value:
            return queryset.filter(**unresolved).distinct()
        return queryset.exclude(**unresolved)


class CourseViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    queryset = TreatmentCourse.objects.select_related("patient")
    serializer_class = CourseSerializer
    team_lookup = "patient__team"
    filterset_class = CourseFilter
    ordering_fields = ["created_at", "last_activity_at", "start_date", "state", "risk_group"]

    def get_serializer_context(self) -> dict[str, Any]:
        return {**super().get_serializer_context(), "with_transitions": self.detail}

    def get_renderers(self) -> list[BaseRenderer]:
        renderers = super().get_renderers()
        if getattr(self, "action", None) == "list":
            renderers.append(CsvRenderer())
        return renderers

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "format",
                str,
                enum=["json", "csv"],
                description="csv: every matching row (no pagination) as a CSV download",
            )
        ],
        responses={
            (200, "application/json"): CourseSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(
                OpenApiTypes.STR,
                description="One row per course, the list's columns without "
                "allowed_transitions; text cells that start with = + - @ are prefixed "
                "with ' (formula injection).",
                examples=[
                    OpenApiExample(
                        "CSV",
                        media_type="text/csv",
                        value="id,team,patient,patient_reference,relapse,protocol_slug,...\r\n"
                        "12,1,7,P-0007,9,all-rez-bfm-90,...\r\n",
                    )
                ],
            ),
            400: ERROR,
        },
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        """The team's courses, filtered and ordered. ``?format=csv`` streams every
        matching row (same filters and ordering, no pagination) as a CSV download."""
        if request.accepted_renderer.format != "csv":
            return super().list(request, *args, **kwargs)
        courses = self.filter_queryset(self.get_queryset())
        row = CourseCsvSerializer(context=self.get_serializer_context())
        fields = list(row.fields)

        def rows() -> Any:
            for course in courses.iterator(chunk_size=2000):
                data = row.to_representation(course)
                yield [data[f] for f in fields]

        return csv_response(
            filename=f"courses-{timezone.localdate().isoformat()}.csv",
            header=fields,
            rows=rows(),
        )

    @extend_schema(request=CourseCreateSerializer, responses={201: CourseSerializer, 400: ERROR})
    def create(self, request: Request) -> Response:
        """Open a course for a relapse: the engine proposes a risk group, which a
        clinician then confirms (confirm-stratification)."""
        serializer = CourseCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        relapse = serializer.validated_data["relapse"]
        require_team_role(request, relapse.patient.team_id, WRITE_ROLES)
        course = services.course_create(
            relapse=relapse,
            protocol_slug=serializer.validated_data["protocol"],
            actor=request.user,
            now=timezone.now(),
        )
        return Response(self._detail(course), status=status.HTTP_201_CREATED)

    def _detail(self, course: TreatmentCourse) -> dict[str, Any]:
        course = self.get_queryset().get(pk=course.pk)
        return CourseSerializer(
            course, context={**self.get_serializer_context(), "with_transitions": True}
        ).data

    @extend_schema(
        request=ConfirmSerializer, responses={200: CourseSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"], url_path="confirm-stratification")
    def confirm_stratification(self, request: Request, pk: str) -> Response:
        """Confirm the proposed risk group, or choose another with a reason. Lays out the
        schedule and moves the course to ``stratified``."""
        course = self.get_object()
        serializer = ConfirmSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        course = services.course_confirm_stratification(
            course, actor=request.user, now=timezone.now(), **serializer.validated_data
        )
        return Response(self._detail(course))

    @extend_schema(
        request=ConfirmHsctSerializer, responses={200: CourseSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"], url_path="confirm-hsct")
    def confirm_hsct(self, request: Request, pk: str) -> Response:
        """Decide the HSCT indication: confirm the protocol's proposal (e.g. from MRD at
        the end of induction in ALL-REZ BFM 2002 S2) or override it with a reason. The
        schedule gains the chosen branch's steps."""
        course = self.get_object()
        serializer = ConfirmHsctSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        course = services.course_confirm_hsct(
            course, actor=request.user, now=timezone.now(), **serializer.validated_data
        )
        return Response(self._detail(course))

    @extend_schema(
        responses=inline_serializer(
            "TransitionOptions",
            {
                "state": serializers.CharField(),
                "version": serializers.IntegerField(),
                "allowed": serializers.ListField(child=serializers.DictField()),
                "history": CourseTransitionSerializer(many=True),
            },
        ),
    )
    @action(detail=True, methods=["get"])
    def transitions(self, request: Request, pk: str) -> Response:
        """The transitions allowed now (and what each needs) and the history.

        One handler per HTTP method: DRF routes HEAD to the GET handler, and the
        permission layer treats HEAD as safe, so a handler that branched on
        ``request.method == "GET"`` would let a HEAD run the write branch."""
        course = self.get_object()
        options = selectors.transition_options(course)
        history = course.transitions.select_related("actor")
        return Response(
            {
                "state": course.state,
                "version": course.version,
                "allowed": [
                    {"transition": o.name, "to_state": o.target, "requires": list(o.requires)}
                    for o in options
                ],
                "history": CourseTransitionSerializer(history, many=True).data,
            }
        )

    @extend_schema(
        request=TransitionRequestSerializer,
        responses={200: CourseSerializer, 400: ERROR, 409: ERROR},
    )
    @transitions.mapping.post
    def transition_apply(self, request: Request, pk: str) -> Response:
        """``{"transition": name, "reason": text}``: 200 with the new state, or 409
        with the reason and the transitions allowed now."""
        course = self.get_object()
        serializer = TransitionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        course = services.course_transition(
            course,
            name=data["transition"],
            reason=data["reason"],
            off_protocol_reason=data["off_protocol_reason"],
            expected_version=data.get("version"),
            actor=request.user,
            now=timezone.now(),
        )
        return Response(self._detail(course))

    @extend_schema(responses=inline_serializer("Timeline", {"entries": serializers.ListField()}))
    @action(detail=True, methods=["get"])
    def timeline(self, request: Request, pk: str) -> Response:
        return Response(selectors.course_timeline(self.get_object()))

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, methods=["get"])
    def audit(self, request: Request, pk: str) -> Response:
        entries = self.get_object().audit.select_related("actor")
        page = self.paginate_queryset(entries)
        return self.get_paginated_response(AuditEntrySerializer(page, many=True).data)


class CourseChildViewSet(viewsets.GenericViewSet):
    """Records nested under /courses/{course_pk}/...: visible to the course's team,
    written by its clinicians and coordinators."""

    record_service: Any = None
    ordering_fields: list[str] = []

    def get_course(self) -> TreatmentCourse:
        if not hasattr(self, "_course"):
            try:
                self._course = selectors.courses_for(self.request.user).get(
                    pk=int(self.kwargs["course_pk"])
                )
            except (TreatmentCourse.DoesNotExist, ValueError) as exc:
                raise Http404 from exc
        return self._course

    def get_queryset(self) -> QuerySet:
        return self.queryset.filter(course=self.get_course()).select_related(
            *getattr(self, "related", ())
        )

    def team_id_of(self, obj: Any) -> int:
        return self.get_course().patient.team_id

    def get_writable_course(self) -> TreatmentCourse:
        """The course, if the requester may record on it (403 for a viewer)."""
        course = self.get_course()
        require_team_role(self.request, course.patient.team_id, WRITE_ROLES)
        return course

    def list(self, request: Request, course_pk: str) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(self.get_serializer(page, many=True).data)

    def create(self, request: Request, course_pk: str) -> Response:
        course = self.get_writable_course()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = type(self).record_service(
            course, data=serializer.validated_data, actor=request.user, now=timezone.now()
        )
        return Response(self.get_serializer(record).data, status=status.HTTP_201_CREATED)


class BlockViewSet(CourseChildViewSet):
    queryset = BlockAdministration.objects.all()
    serializer_class = BlockSerializer
    related = ("recorded_by",)
    record_service = staticmethod(services.block_record)


class AssessmentViewSet(CourseChildViewSet):
    queryset = ResponseAssessment.objects.all()
    serializer_class = AssessmentSerializer
    related = ("recorded_by",)
    record_service = staticmethod(services.assessment_record)


class MrdViewSet(CourseChildViewSet):
    queryset = MrdResult.objects.all()
    serializer_class = MrdSerializer
    related = ("recorded_by",)
    record_service = staticmethod(services.mrd_record)


class EventViewSet(CourseChildViewSet):
    queryset = ClinicalEvent.objects.all()
    serializer_class = EventSerializer
    related = ("recorded_by",)
    record_service = staticmethod(services.event_record)


class ReferralViewSet(CourseChildViewSet):
    """The course's one HSCT referral: GET it, PUT/PATCH to record or update it."""

    queryset = HsctReferral.objects.all()
    serializer_class = ReferralSerializer

    def get_referral(self) -> Any:
        referral = getattr(self.get_course(), "hsct_referral", None)
        if referral is None:
            raise Http404
        return referral

    def get_object(self) -> Any:
        # The one object this route names (DRF's OPTIONS metadata asks for it).
        return self.get_referral()

    def list(self, request: Request, course_pk: str) -> Response:
        return Response(self.get_serializer(self.get_referral()).data)

    def create(self, request: Request, course_pk: str) -> Response:
        course = self.get_writable_course()
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        referral = services.referral_save(
            course, data=serializer.validated_data, actor=request.user, now=timezone.now()
        )
        return Response(self.get_serializer(referral).data)


class StepViewSet(CourseChildViewSet):
    queryset = PlannedStep.objects.all()
    serializer_class = PlannedStepSerializer

    def get_queryset(self) -> QuerySet:
        return super().get_queryset().order_by("sequence")

    @extend_schema(request=StepCreateSerializer, responses={201: PlannedStepSerializer})
    def create(self, request: Request, course_pk: str) -> Response:
        course = self.get_writable_course()
        serializer = StepCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        step = services.step_add(
            course, data=serializer.validated_data, actor=request.user, now=timezone.now()
        )
        return Response(PlannedStepSerializer(step).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=StepUpdateSerializer, responses={200: PlannedStepSerializer})
    def partial_update(self, request: Request, course_pk: str, pk: str) -> Response:
        self.get_writable_course()  # 404 or 403 before anything is parsed
        try:
            step = self.get_queryset().get(pk=int(pk))
        except (PlannedStep.DoesNotExist, ValueError) as exc:
            raise Http404 from exc
        serializer = StepUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        step = services.step_update(
            step, data=serializer.validated_data, actor=request.user, now=timezone.now()
        )
        return Response(PlannedStepSerializer(step).data)


OUTCOMES_EXAMPLE = {
    "protocol": "all-rez-bfm-90",
    "team": None,
    "as_of": "2026-11-24T10:00:00+00:00",
    "method": {
        "estimator": "Kaplan-Meier (lifelines KaplanMeierFitter)",
        "standard_error": "Greenwood",
        "confidence_interval": "95 %, Greenwood variance on the log(-log) scale",
        "time_origin": "course start (stratification confirmed)",
        "events": [
            "second_relapse",
            "death",
            "secondary_malignancy",
            "refractory (taken off protocol)",
        ],
        "censoring": "withdrawal, lost to follow-up, or the last follow-up "
        "(latest date recorded for the course)",
        "days_per_year": 365.25,
    },
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
    "reference": {
        "protocol": "all-rez-bfm-90",
        "source": "Tallen et al., J Clin Oncol 2010;28:2339 (ALL-REZ BFM 90), as quoted by "
        "the seed article (Treatment of Relapsed ALL Using the ALL-REZ BFM90 Protocol)",
        "verification": "seed article, not verified against the paper's tables",
        "note": "The A and B figures are close to ALL-REZ BFM 87's.",
        "efs_years": 10,
        "groups": [{"group": "A", "efs": 0.17, "efs_se": 0.03, "cr2_rate": 0.83}],
    },
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
        """EFS from the course start, per risk group of the protocol (default
        all-rez-bfm-90): Kaplan-Meier curve with Greenwood standard errors, 95 %
        confidence limits and numbers at risk, the median, the 5- and 10-year estimates
        where follow-up reaches them, and the published reference figures (from the
        seed article, not verified against the paper's tables). Only courses with a
        confirmed risk group count. ``team``: one of your teams (another team's id is
        404)."""
        query = OutcomesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        team = query.validated_data.get("team")
        if team is not None and team not in team_ids_for(request.user):
            raise NotFound()
        courses = selectors.courses_for(request.user)
        if team is not None:
            courses = courses.filter(patient__team_id=team)
        report = outcomes.efs_report(
            courses,
            protocol_slug=query.validated_data["protocol"],
            team=team,
            now=timezone.now(),
        )
        return Response(report)
