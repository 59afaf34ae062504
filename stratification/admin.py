"""Admin for stratification decisions: read-only.

A decision is confirmed together with its course (the risk group, the schedule and
the move to ``stratified`` belong to one act), which only the course service can do:
``POST /api/v1/courses/{id}/confirm-stratification/``. Confirming the decision alone
here once left the course ``registered`` with no schedule, and the API's confirm
answered 409 for ever after.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join

from stratification.models import StratificationDecision


@admin.register(StratificationDecision)
class StratificationDecisionAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "created_at",
        "protocol_slug",
        "protocol_version",
        "time_point",
        "site",
        "proposed_group",
        "status",
        "hsct_indicated",
        "chosen_group",
        "confirmed_at",
    ]
    list_filter = ["protocol_slug", "status", "time_point", "site", "hsct_indicated"]
    date_hierarchy = "created_at"
    list_select_related = ["confirmed_by"]
    decided_fields = [
        "protocol_slug",
        "protocol_version",
        "created_at",
        "time_point",
        "site",
        "proposed_group",
        "status",
        "hsct_indicated",
        "reasons_table",
        "input_snapshot_pretty",
    ]
    readonly_fields = [
        *decided_fields,
        "confirmed_by",
        "confirmed_at",
        "chosen_group",
        "override_reason",
    ]
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # decisions come from the engine, through the course service

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # confirmed with the course, through the API

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # append-only

    @admin.display(description="Reasons")
    def reasons_table(self, obj: StratificationDecision) -> str:
        return format_html_join(
            "",
            "<p><code>{}</code> {} <em>({})</em></p>",
            ((r["rule"], r["text"], r["source"]) for r in obj.reasons),
        )

    @admin.display(description="Input snapshot")
    def input_snapshot_pretty(self, obj: StratificationDecision) -> str:
        return format_html(
            "<pre>{}</pre>", json.dumps(obj.input_snapshot, indent=2, sort_keys=True)
        )
