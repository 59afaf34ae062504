from __future__ import annotations

from django.contrib.auth import get_user_model

from config import serializers
from teams.models import Membership, Team
from teams.selectors import team_roles

User = get_user_model()


class TeamSerializer(serializers.ModelSerializer):
    my_role = serializers.SerializerMethodField()

    class Meta:
        model = Team
        fields = [
            "id",
            "name",
            "slug",
            "time_zone",
            "digest_hour",
            "distribution_email",
            "my_role",
            "created_at",
        ]
        read_only_fields = ["id", "slug", "created_at"]

    def get_my_role(self, team: Team) -> str | None:
        return team_roles(self.context["request"].user).get(team.pk)


class TeamPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A team the requester belongs to; any other id reads as 'does not exist'."""

    def get_queryset(self):
        from teams.selectors import teams_for

        return teams_for(self.context["request"].user)


class MembershipSerializer(serializers.ModelSerializer):
    team = TeamPrimaryKeyField()
    username = serializers.SlugRelatedField(
        source="user", slug_field="username", queryset=User.objects.filter(is_active=True)
    )

    class Meta:
        model = Membership
        fields = ["id", "team", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []  # the unique pair is checked below with a clearer message

    def validate(self, attrs: dict) -> dict:
        if (
            self.instance is None
            and Membership.objects.filter(team=attrs["team"], user=attrs["user"]).exists()
        ):
            raise serializers.ValidationError({"username": ["is already a member of this team."]})
        return attrs


class MembershipUpdateSerializer(serializers.ModelSerializer):
    class Meta:
        model = Membership
        fields = ["role"]


class MeSerializer(serializers.Serializer):
    username = serializers.CharField()
    teams = serializers.SerializerMethodField()

    def get_teams(self, user) -> list[dict]:
        roles = team_roles(user)
        teams = Team.objects.filter(pk__in=roles).order_by("name")
        return [{"id": t.pk, "name": t.name, "slug": t.slug, "role": roles[t.pk]} for t in teams]
