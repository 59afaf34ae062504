from __future__ import annotations

import django_filters
from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import services
from notifications.email import retry_failed
from notifications.email.recipients import immediate_min_severity
from notifications.models import (
    DEFAULT_DIGEST,
    Alert,
    AlertKind,
    AlertState,
    OutboundEmail,
    Severity,
)
from notifications.serializers import (
    AcknowledgeSerializer,
    AlertEventSerializer,
    AlertSerializer,
    NotificationPreferenceSerializer,
    OutboundEmailSerializer,
    ResolveSerializer,
    SnoozeSerializer,
)
from teams.models import ADMIN_ROLES, Membership
from teams.permissions import TeamScopedMixin
from teams.selectors import on_team_date, team_dates

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
        # Snoozed until after each alert's team's today, not the server's.
        dates = team_dates(self.request.user, timezone.now())
        today = on_team_date(dates, "course__patient__team_id")
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

    def _act(self, request: Request, serializer_class: type, service, **extra) -> Response:
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
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def history(self, request: Request, pk: str) -> Response:
        """The alert's whole history, oldest first (not paginated: a handful of rows)."""
        events = self.get_object().events.select_related("actor")
        return Response(AlertEventSerializer(events, many=True).data)


class OutboundEmailViewSet(
    TeamScopedMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """The team's outgoing e-mails and their delivery state. A coordinator can retry
    one that failed for good (after fixing the address, say)."""

    queryset = OutboundEmail.objects.all()
    serializer_class = OutboundEmailSerializer
    write_roles = ADMIN_ROLES
    filterset_fields = ["team", "status", "kind", "alert"]
    ordering_fields = ["created_at", "next_attempt_at"]

    @extend_schema(request=None, responses={200: OutboundEmailSerializer, 409: ERROR})
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        email = retry_failed(self.get_object(), timezone.now())
        return Response(OutboundEmailSerializer(email).data)


@extend_schema_view(
    partial_update=extend_schema(
        parameters=[
            OpenApiParameter(
                "membership",
                int,
                OpenApiParameter.PATH,
                description="the id of one of my memberships",
            )
        ]
    )
)
class NotificationPreferenceViewSet(viewsets.ViewSet):
    """My notification preferences, one per team I belong to (the defaults apply until
    I change them: high severity at once for clinicians and coordinators, the digest
    only for viewers unless they opt in, everything in the daily digest)."""

    team_free_writes = True  # everyone may set their own preferences, viewers too
    lookup_field = "membership"

    def _rows(self, request: Request) -> list[dict]:
        memberships = Membership.objects.filter(user=request.user).select_related(
            "team", "notification_preference"
        )
        rows = []
        for m in memberships.order_by("team__name"):
            pref = getattr(m, "notification_preference", None)
            rows.append(
                {
                    "membership": m.pk,
                    "team": m.team_id,
                    "team_name": m.team.name,
                    "immediate_min_severity": immediate_min_severity(m.role, pref),
                    "digest": pref.digest if pref else DEFAULT_DIGEST,
                    "viewer_immediate_opt_in": bool(pref and pref.viewer_immediate_opt_in),
                }
            )
        return rows

    @extend_schema(responses=NotificationPreferenceSerializer(many=True))
    def list(self, request: Request) -> Response:
        return Response(NotificationPreferenceSerializer(self._rows(request), many=True).data)

    @extend_schema(
        request=NotificationPreferenceSerializer,
        responses={200: NotificationPreferenceSerializer, 400: ERROR},
    )
    def partial_update(self, request: Request, membership: str) -> Response:
        serializer = NotificationPreferenceSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            member = Membership.objects.get(pk=int(membership), user=request.user)
        except (Membership.DoesNotExist, ValueError) as exc:
            raise Http404 from exc
        services.preference_update(member, **serializer.validated_data)
        row = next(r for r in self._rows(request) if r["membership"] == member.pk)
        return Response(NotificationPreferenceSerializer(row).data)
