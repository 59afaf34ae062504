from __future__ import annotations

import django_filters
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import services
from notifications.models import Alert, AlertKind, AlertState, Severity
from notifications.serializers import (
    AcknowledgeSerializer,
    AlertEventSerializer,
    AlertSerializer,
    ResolveSerializer,
    SnoozeSerializer,
)
from teams.permissions import TeamScopedMixin

ERROR = OpenApiResponse(description="Error in the API's error shape")


class AlertFilter(django_filters.FilterSet):
    team = django_filters.NumberFilter(field_name="course__patient__team")
    kind = django_filters.MultipleChoiceFilter(choices=AlertKind.choices)
    severity = django_filters.MultipleChoiceFilter(choices=Severity.choices)
    state = django_filters.MultipleChoiceFilter(choices=AlertState.choices)
    course = django_filters.NumberFilter()
    snoozed = django_filters.BooleanFilter(method="filter_snoozed")

    class Meta:
        model = Alert
        fields = ["team", "kind", "severity", "state", "course", "snoozed"]

    def filter_snoozed(self, queryset, name, value):  # noqa: ANN001, ANN201
        today = timezone.localdate()
        if value:
            return queryset.filter(snoozed_until__gt=today)
        return queryset.exclude(snoozed_until__gt=today)


class AlertViewSet(
    TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Alerts raised by the protocol-caveat sweep. Acknowledge, snooze or resolve them;
    they are never deleted."""

    queryset = Alert.objects.select_related("course__patient", "acknowledged_by", "resolved_by")
    serializer_class = AlertSerializer
    team_lookup = "course__patient__team"
    filterset_class = AlertFilter
    ordering_fields = ["opened_at", "severity", "condition_since", "escalation_level"]

    def _act(self, request: Request, serializer_class: type, service, **extra) -> Response:  # noqa: ANN001, ANN003
        alert = self.get_object()
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = service(
            alert, actor=request.user, now=timezone.now(), **serializer.validated_data, **extra
        )
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(
        request=AcknowledgeSerializer, responses={200: AlertSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str) -> Response:
        return self._act(request, AcknowledgeSerializer, services.alert_acknowledge)

    @extend_schema(
        request=SnoozeSerializer, responses={200: AlertSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str) -> Response:
        return self._act(request, SnoozeSerializer, services.alert_snooze)

    @extend_schema(
        request=ResolveSerializer, responses={200: AlertSerializer, 400: ERROR, 409: ERROR}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str) -> Response:
        return self._act(request, ResolveSerializer, services.alert_resolve)

    @extend_schema(responses=AlertEventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def history(self, request: Request, pk: str) -> Response:
        events = self.get_object().events.select_related("actor")
        return Response(AlertEventSerializer(events, many=True).data)
