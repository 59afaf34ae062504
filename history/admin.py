"""The history in the admin: read-only (django-auditlog's own admin, registered for
the entry model, is replaced by this one)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from history.models import Entry

if admin.site.is_registered(Entry):
    admin.site.unregister(Entry)


@admin.register(Entry)
class EntryAdmin(admin.ModelAdmin):
    list_display = [
        "timestamp",
        "channel",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "actor",
        "team_id",
    ]
    list_filter = ["channel", "action", "content_type"]
    list_select_related = ["actor", "content_type"]
    search_fields = ["object_repr"]
    date_hierarchy = "timestamp"
    fields = [
        "timestamp",
        "channel",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "changes",
        "actor",
        "team_id",
        "owner_id",
    ]
    readonly_fields = fields

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False
