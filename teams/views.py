from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from teams import services
from teams.models import ADMIN_ROLES, Membership, Team
from teams.permissions import TeamRolePermission, TeamScopedMixin, require_team_role
from teams.serializers import (
    MembershipSerializer,
    MembershipUpdateSerializer,
    MeSerializer,
    TeamSerializer,
)


class MeView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeSerializer, summary="Who am I: my teams and roles")
    def get(self, request: Request) -> Response:
        return Response(MeSerializer(request.user).data)


class TeamViewSet(
    TeamScopedMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """The requester's teams. Coordinators may rename a team or change its time zone;
    teams are created in the admin."""

    queryset = Team.objects.all()
    serializer_class = TeamSerializer
    team_lookup = "id"
    write_roles = ADMIN_ROLES
    permission_classes = [IsAuthenticated, TeamRolePermission]
    ordering_fields = ["name"]


class MembershipViewSet(TeamScopedMixin, viewsets.ModelViewSet):
    """Members of the requester's teams; coordinators add, re-role and remove them."""

    queryset = Membership.objects.select_related("user", "team")
    serializer_class = MembershipSerializer
    write_roles = ADMIN_ROLES
    filterset_fields = ["team", "role"]
    ordering_fields = ["created_at", "role"]
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def perform_create(self, serializer: MembershipSerializer) -> None:
        require_team_role(self.request, serializer.validated_data["team"], ADMIN_ROLES)
        serializer.save()

    @extend_schema(request=MembershipUpdateSerializer, responses=MembershipSerializer)
    def partial_update(self, request: Request, *args: object, **kwargs: object) -> Response:
        membership = self.get_object()
        serializer = MembershipUpdateSerializer(membership, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        role = serializer.validated_data.get("role", membership.role)
        membership = services.membership_change_role(membership, role)
        return Response(self.get_serializer(membership).data)

    def perform_destroy(self, instance: Membership) -> None:
        services.membership_remove(instance)
