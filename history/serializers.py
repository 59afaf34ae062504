from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field

from config import serializers
from history.context import Channel
from history.models import Entry

ACTIONS = {
    Entry.Action.CREATE: "create",
    Entry.Action.UPDATE: "update",
    Entry.Action.DELETE: "delete",
}

CHANGES_SCHEMA = {
    "type": "object",
    "description": "{field: [before, after]}; null where a row was created or deleted.",
    "additionalProperties": {"type": "array", "items": {}, "minItems": 2, "maxItems": 2},
}


@extend_schema_field(CHANGES_SCHEMA)
class ChangesField(serializers.JSONField):
    pass


class EntrySerializer(serializers.ModelSerializer):
    at = serializers.DateTimeField(source="timestamp", read_only=True)
    action = serializers.SerializerMethodField()
    model = serializers.SerializerMethodField()
    object = serializers.CharField(source="object_repr", read_only=True)
    changes = ChangesField(read_only=True)
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    channel = serializers.ChoiceField(choices=Channel.choices, read_only=True)
    team = serializers.IntegerField(source="team_id", read_only=True, allow_null=True)

    class Meta:
        model = Entry
        fields = [
            "id",
            "at",
            "action",
            "model",
            "object_id",
            "object",
            "changes",
            "actor",
            "channel",
            "team",
        ]
        read_only_fields = fields

    @extend_schema_field({"type": "string", "enum": list(ACTIONS.values())})
    def get_action(self, entry: Entry) -> str:
        return ACTIONS[entry.action]

    @extend_schema_field({"type": "string", "example": "courses.patient"})
    def get_model(self, entry: Entry) -> str:
        return f"{entry.content_type.app_label}.{entry.content_type.model}"

    def to_representation(self, instance: Any) -> Any:
        data = super().to_representation(instance)
        data["changes"] = instance.changes or {}
        return data
