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
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from config.renderers import CsvRenderer, csv_response
from courses import selectors, services
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
from courses.serializers import (
    AssessmentSerializer,
    AuditEntrySerializer,
    BlockSerializer,
    ConfirmHsctSerializer,
    ConfirmSerializer,
    CourseCreateSerializer,
    CourseCsvSerializer,
    CourseSerializer,
    CourseTransitionSerializer,
    EventSerializer,
    MrdSerializer,
    PatientSerializer,
    PatientUpdateSerializer,
    PlannedStepSerializer,
    ReferralSerializer,
    RelapseSerializer,
    RelapseUpdateSerializer,
    RestratifySerializer,
    StepCreateSerializer,
    StepUpdateSerializer,
    TransitionRequestSerializer,
    VoidSerializer,
    amending,
)
from stratification.models import StratificationDecision
from stratification.serializers import StratificationDecisionDetailSerializer
from teams.models import WRITE_ROLES
from teams.permissions import TeamScopedMixin, require_team_role
from teams.selectors import file_date, team_dates

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
        """A change to a fact a course's stratification read marks that decision stale
        (the course shows it, an alert says so); the same checks as on creation apply,
        including against the patient's relapses."""
        serializer.instance = services.patient_update(
            serializer.instance, serializer.validated_data, timezone.now(), actor=self.request.user
        )


class RelapseViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    queryset = Relapse.objects.select_related("course")
    serializer_class = RelapseSerializer
    team_lookup = "patient__team"
    filterset_fields = ["patient", "site"]
    ordering_fields = ["relapse_date", "created_at"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_serializer_class(self) -> type:
        return RelapseUpdateSerializer if self.action == "partial_update" else RelapseSerializer

    def perform_create(self, serializer: RelapseSerializer) -> None:
        data = dict(serializer.validated_data)
        patient = data.pop("patient")
        require_team_role(self.request, patient.team_id, WRITE_ROLES)
        serializer.instance = services.relapse_create(
            patient=patient, data=data, now=timezone.now()
        )

    def perform_update(self, serializer: RelapseUpdateSerializer) -> None:
        """The relapse's facts, checked as on creation; a change to one that its course's
        stratification read marks the decision stale."""
        serializer.instance = services.relapse_update(
            serializer.instance, serializer.validated_data, timezone.now(), actor=self.request.user
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
    # The current decision is embedded in every row, and the relapse number read from
    # the relapse: joined, not fetched per course.
    queryset = TreatmentCourse.objects.select_related(
        "patient", "decision", "relapse", "hsct_confirmed_by"
    )
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
        now = timezone.now()
        courses = self.filter_queryset(self.get_queryset())
        row = CourseCsvSerializer(context=self.get_serializer_context())
        fields = list(row.fields)

        def rows() -> Any:
            for course in courses.iterator(chunk_size=2000):
                data = row.to_representation(course)
                yield [data[f] for f in fields]

        return csv_response(
            filename=f"courses-{file_date(team_dates(request.user, now), now).isoformat()}.csv",
            header=fields,
            rows=rows(),
        )

    @extend_schema(request=CourseCreateSerializer, responses={201: CourseSerializer, 400: ERROR})
    def create(self, request: Request) -> Response:
        """Open a course for a relapse: the engine proposes a risk group, which a
        clinician then confirms (confirm-stratification). A case outside the protocol's
        population (second relapse, prior HSCT, BCR::ABL1-positive, infant, MPAL) is
        ``needs_review`` with no group, the exclusion named in the decision's reasons.
        ``on_therapy`` long after diagnosis is a 400 on ``frontline_status`` unless
        confirmed (``confirm_implausible`` with ``implausible_reason``)."""
        serializer = CourseCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        relapse = data["relapse"]
        require_team_role(request, relapse.patient.team_id, WRITE_ROLES)
        course = services.course_create(
            relapse=relapse,
            protocol_slug=data["protocol"],
            confirm_implausible=data["confirm_implausible"],
            implausible_reason=data["implausible_reason"],
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
        request=RestratifySerializer, responses={200: CourseSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"])
    def restratify(self, request: Request, pk: str) -> Response:
        """Stratify again with the facts recorded now and the loaded protocol version,
        when the current decision is stale (``decision_stale``) or was made with another
        version (``decision_outdated``); 409 ``decision_current`` otherwise. The new
        decision is appended and becomes ``decision``; a course under way keeps its
        confirmed group until a clinician confirms again (confirm-stratification)."""
        course = self.get_object()
        serializer = RestratifySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        course = services.course_restratify(
            course, actor=request.user, now=timezone.now(), **serializer.validated_data
        )
        return Response(self._detail(course))

    @extend_schema(
        request=ConfirmSerializer, responses={200: CourseSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"], url_path="confirm-stratification")
    def confirm_stratification(self, request: Request, pk: str) -> Response:
        """Confirm the proposed risk group, or choose another with a reason. A registered
        course takes the day therapy began (``start_date``; default: the first recorded
        block's start, else today): its schedule is laid out from that date, what was
        recorded before is linked to it, and it moves to ``stratified``. A course under
        way confirms its re-stratification (if the group changes, the open part of the
        schedule is laid out anew from the new group's template, everything recorded
        kept). A stale decision is refused (409 ``decision_stale``): re-stratify first."""
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
        """``{"transition": name, "reason": text, "on": date}``: 200 with the new
        state, or 409 with the reason and the transitions allowed now. ``on`` is the
        move's clinical date (default today; never in the future, never before the
        previous move's date)."""
        course = self.get_object()
        serializer = TransitionRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        course = services.course_transition(
            course,
            name=data["transition"],
            reason=data["reason"],
            off_protocol_reason=data["off_protocol_reason"],
            on=data.get("on"),
            expected_version=data.get("version"),
            actor=request.user,
            now=timezone.now(),
        )
        return Response(self._detail(course))

    @extend_schema(responses=AuditEntrySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
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

    def void_record(self, request: Request, record: Any) -> Response:
        """Void ``record`` with the request's reason (the course is writable: checked)."""
        serializer = VoidSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        record = services.record_void(
            record,
            reason=serializer.validated_data["reason"],
            actor=request.user,
            now=timezone.now(),
        )
        return Response(self.get_serializer(record).data)


class RecordViewSet(CourseChildViewSet):
    """A kind of clinical record: listed (voided ones too, marked), recorded, read one
    by one, amended (PATCH: the old values go to the audit trail) and voided (POST
    .../void/ with a reason). Never deleted."""

    related = ("recorded_by", "voided_by")

    def get_serializer_class(self) -> type:
        # A PATCH takes the record's fields and the reason for the amendment.
        if self.action == "partial_update":
            return amending(self.serializer_class)
        return self.serializer_class

    def get_record(self, pk: str) -> Any:
        try:
            return self.get_queryset().get(pk=int(pk))
        except (self.queryset.model.DoesNotExist, ValueError) as exc:
            raise Http404 from exc

    def retrieve(self, request: Request, course_pk: str, pk: str) -> Response:
        return Response(self.get_serializer(self.get_record(pk)).data)

    def partial_update(self, request: Request, course_pk: str, pk: str) -> Response:
        """Amend the record, with the reason (required): the fields given change,
        checked like a new record; the old values, the new ones and the reason are kept
        in the course's audit trail. The schedule and alerts follow."""
        self.get_writable_course()  # 404 or 403 before anything is parsed
        record = self.get_record(pk)
        serializer = self.get_serializer(record, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        reason = data.pop("reason", "")
        record = services.record_amend(
            record, data=data, reason=reason, actor=request.user, now=timezone.now()
        )
        return Response(self.serializer_class(record, context=self.get_serializer_context()).data)

    @extend_schema(request=VoidSerializer)
    def void(self, request: Request, course_pk: str, pk: str) -> Response:
        """Void the record, with the reason: it is kept and shown as voided, and the
        schedule (its step reopens), guards, alert rules and figures ignore it."""
        self.get_writable_course()
        return self.void_record(request, self.get_record(pk))


class BlockViewSet(RecordViewSet):
    queryset = BlockAdministration.with_voided.all()
    serializer_class = BlockSerializer
    record_service = staticmethod(services.block_record)


class AssessmentViewSet(RecordViewSet):
    queryset = ResponseAssessment.with_voided.all()
    serializer_class = AssessmentSerializer
    record_service = staticmethod(services.assessment_record)


class MrdViewSet(RecordViewSet):
    queryset = MrdResult.with_voided.all()
    serializer_class = MrdSerializer
    record_service = staticmethod(services.mrd_record)


class EventViewSet(RecordViewSet):
    """Clinical events and follow-up contacts; a completed or off-protocol course
    still takes these."""

    queryset = ClinicalEvent.with_voided.all()
    serializer_class = EventSerializer
    record_service = staticmethod(services.event_record)


class ReferralViewSet(CourseChildViewSet):
    """The course's one valid HSCT referral: GET it, PUT/PATCH to record or update it
    (an update keeps the old values in the audit trail), POST .../void/ to void it
    with a reason (a new one can then be recorded)."""

    queryset = HsctReferral.objects.all()
    serializer_class = ReferralSerializer

    def get_referral(self) -> Any:
        referral = HsctReferral.objects.filter(course=self.get_course()).first()
        if referral is None:
            raise Http404
        return referral

    def get_object(self) -> Any:
        # The one object this route names (DRF's OPTIONS metadata asks for it).
        return self.get_referral()

    def retrieve(self, request: Request, course_pk: str) -> Response:
        return Response(self.get_serializer(self.get_referral()).data)

    def create(self, request: Request, course_pk: str) -> Response:
        course = self.get_writable_course()
        serializer = self.get_serializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        reason = data.pop("reason", "")
        referral = services.referral_save(
            course, data=data, reason=reason, actor=request.user, now=timezone.now()
        )
        return Response(self.get_serializer(referral).data)

    @extend_schema(request=VoidSerializer)
    def void(self, request: Request, course_pk: str) -> Response:
        """Void the valid referral, with the reason; a new one can then be recorded."""
        self.get_writable_course()
        return self.void_record(request, self.get_referral())


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


class StratificationDecisionViewSet(
    TeamScopedMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """One stratification decision of a course of the requester's teams, with the facts
    it was given (``input_snapshot``); another team's is not found. Every decision a
    course had stays readable (re-stratification appends, never replaces)."""

    queryset = StratificationDecision.objects.select_related("course_link")
    serializer_class = StratificationDecisionDetailSerializer
    team_lookup = "course_link__course__patient__team"
    http_method_names = ["get", "head", "options"]
