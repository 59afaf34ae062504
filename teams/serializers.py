from __future__ import annotations

from config import serializers
from teams.models import ADMIN_ROLES, Membership, Team
from teams.permissions import require_team_role
from teams.selectors import account_to_add, team_ids_for, team_roles


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

    def validate_name(self, name: str) -> str:
        # Unique among the requester's own teams only: a check across the site would
        # confirm another site's team name (docs/decisions.md).
        mine = Team.objects.filter(pk__in=team_ids_for(self.context["request"].user))
        if self.instance is not None:
            mine = mine.exclude(pk=self.instance.pk)
        if mine.filter(name__iexact=name).exists():
            raise serializers.ValidationError("another of your teams has this name.")
        return name


class OnlyTeamDefault:
    """The default of a team field on create: the requester's team when they belong to
    exactly one (a member of one team is never asked for it); otherwise the field is
    required, and its absence is a 400 naming it."""

    requires_context = True

    def __call__(self, field: serializers.Field) -> Team:
        from teams.selectors import sole_team, team_ids_for

        user = field.context["request"].user
        team = sole_team(user)
        if team is not None:
            return team
        raise serializers.ValidationError(
            "is required: you belong to several teams; give the id of one of them."
            if team_ids_for(user)
            else "is required: you belong to no team."
        )


class TeamPrimaryKeyField(serializers.PrimaryKeyRelatedField):
    """A team the requester belongs to; any other id reads as 'does not exist'.
    Optional on create for a member of exactly one team (OnlyTeamDefault)."""

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("default", OnlyTeamDefault())
        kwargs.setdefault(
            "help_text",
            "A team you belong to. Optional when you belong to exactly one team (that team "
            "is used); required otherwise.",
        )
        super().__init__(**kwargs)

    def get_queryset(self):
        from teams.selectors import teams_for

        return teams_for(self.context["request"].user)


NO_SUCH_ACCOUNT = "no account you may add has this username or e-mail address."


class MembershipSerializer(serializers.ModelSerializer):
    team = TeamPrimaryKeyField()
    username = serializers.CharField(
        source="user.username",
        max_length=254,
        help_text="In: the person's exact username, or their account's e-mail address. "
        "Out: their username.",
    )

    class Meta:
        model = Membership
        fields = ["id", "team", "username", "role", "created_at"]
        read_only_fields = ["id", "created_at"]
        validators: list = []  # the unique pair is checked below with a clearer message

    def validate_team(self, team: Team) -> Team:
        # Before the account is looked up: someone who may not add members learns
        # nothing about which accounts exist (403 whatever the username).
        require_team_role(self.context["request"], team, ADMIN_ROLES)
        return team

    def validate(self, attrs: dict) -> dict:
        # Only reached when the team is one the requester coordinates (validate_team);
        # an unknown, inactive or superuser account, or an ambiguous e-mail address,
        # all answer the same.
        user = account_to_add(attrs.pop("user")["username"])
        if user is None:
            raise serializers.ValidationError({"username": [NO_SUCH_ACCOUNT]})
        if (
            self.instance is None
            and Membership.objects.filter(team=attrs["team"], user=user).exists()
        ):
            raise serializers.ValidationError({"username": ["is already a member of this team."]})
        return {**attrs, "user": user}


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
