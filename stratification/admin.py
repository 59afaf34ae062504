"""Admin for stratification decisions: what the engine decided is read-only; an
unconfirmed decision can be confirmed once (through the service), nothing else."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from stratification import services
from stratification.models import StratificationDecision
from stratification.selectors import protocol_get


class ConfirmDecisionForm(forms.ModelForm):
    chosen_group = forms.ChoiceField(required=True)
    override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Required when the chosen group differs from the proposed one.",
    )

    class Meta:
        model = StratificationDecision
        fields = ["chosen_group", "override_reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        protocol = protocol_get(self.instance.protocol_slug)
        groups = [(g.id, f"{g.id} — {g.name}") for g in protocol.groups] if protocol else []
        self.fields["chosen_group"].choices = [("", "---------"), *groups]
        if self.instance.proposed_group and not self.is_bound:
            self.initial["chosen_group"] = self.instance.proposed_group

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        errors = services.confirmation_errors(
            self.instance, cleaned.get("chosen_group"), cleaned.get("override_reason", "")
        )
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)
        return cleaned


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
    form = ConfirmDecisionForm
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

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # decisions come from the engine, through the service

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # append-only

    def has_change_permission(
        self, request: HttpRequest, obj: StratificationDecision | None = None
    ) -> bool:
        # A confirmed decision is shown read-only (view permission), never edited.
        if obj is not None and obj.is_confirmed:
            return False
        return super().has_change_permission(request, obj)

    def get_readonly_fields(
        self, request: HttpRequest, obj: StratificationDecision | None = None
    ) -> list[str]:
        return list(self.decided_fields)

    def get_fields(
        self, request: HttpRequest, obj: StratificationDecision | None = None
    ) -> list[str]:
        confirmation = ["chosen_group", "override_reason"]
        if obj is not None and obj.is_confirmed:
            confirmation = ["confirmed_by", "confirmed_at", *confirmation]
        return [*self.decided_fields, *confirmation]

    def save_model(
        self, request: HttpRequest, obj: StratificationDecision, form: forms.Form, change: bool
    ) -> None:
        # The form only carries the confirmation; the service writes it (once).
        fresh = StratificationDecision.objects.get(pk=obj.pk)
        services.decision_confirm(
            fresh,
            request.user,
            form.cleaned_data["chosen_group"],
            form.cleaned_data.get("override_reason", ""),
            timezone.now(),
        )

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
