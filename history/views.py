from __future__ import annotations

import django_filters
from django.db.models import QuerySet
from rest_framework import mixins, viewsets

from config.filters import IdFilter
from history.context import Channel
from history.registry import TOKENS, TRACKED
from history.selectors import history_for
from history.serializers import EntrySerializer

# The models the history records, by the label the answers carry ("courses.patient");
# a token's rotation is recorded on its user.
MODEL_CHOICES = sorted(
    {(label.lower(), label.lower()) for label in TRACKED} | {("auth.user", "auth.user")}
)
assert TOKENS  # tokens are recorded on auth.user


class EntryFilter(django_filters.FilterSet):
    team = IdFilter(field_name="team_id", help_text="one of your teams")
    model = django_filters.ChoiceFilter(
        choices=MODEL_CHOICES, method="by_model", help_text="what changed, e.g. courses.patient"
    )
    object_id = IdFilter(field_name="object_id", help_text="the changed row's id (with model)")
    channel = django_filters.ChoiceFilter(choices=Channel.choices)

    def by_model(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        app_label, model = value.split(".")
        return queryset.filter(content_type__app_label=app_label, content_type__model=model)


class HistoryViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Every write to your teams' data, newest first: who, when, through which channel
    (api, web, admin, command, task) and what changed (before and after). Your own API
    and calendar token rotations are listed too (without the secrets). Read-only;
    every member may read it, viewers included."""

    serializer_class = EntrySerializer
    filterset_class = EntryFilter
    ordering_fields: list[str] = []

    def get_queryset(self) -> QuerySet:
        return history_for(self.request.user)
