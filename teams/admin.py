"""Admin for teams and members. Teams are created here (there is no API for it);
changing or removing a membership goes through the same services as the API, so a
team never loses its last coordinator."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from teams import services
from teams.models import Membership, Role, Team
from teams.selectors import is_last_coordinator

User = get_user_model()


class MembershipInline(admin.TabularInline):
    """New members only: a role changes, and a member leaves, on the membership's own
    page, through the services."""

    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    can_delete = False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


class MembershipForm(forms.ModelForm):
    def clean_role(self) -> str:
        role = self.cleaned_data["role"]
        if (
            self.instance.pk is not None
            and role != Role.COORDINATOR
            and is_last_coordinator(self.instance)
        ):
            raise forms.ValidationError(services.LAST_COORDINATOR)
        return role


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    form = MembershipForm
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["team", "role"]
    list_select_related = ["user", "team"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["user", "team"] if obj is not None else []

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # One at a time, through membership_remove (the bulk delete would bypass it).
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def has_delete_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        if obj is not None and is_last_coordinator(obj):
            return False
        return super().has_delete_permission(request, obj)

    def save_model(
        self, request: HttpRequest, obj: Membership, form: forms.Form, change: bool
    ) -> None:
        if change:
            services.membership_change_role(obj, form.cleaned_data["role"])
        else:
            super().save_model(request, obj, form, change)  # as the API adds a member

    def delete_model(self, request: HttpRequest, obj: Membership) -> None:
        services.membership_remove(obj)


admin.site.unregister(User)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    actions = ["rotate_api_token"]

    @admin.action(description="Create or rotate the API token of the selected users")
    def rotate_api_token(self, request: HttpRequest, queryset: QuerySet) -> None:
        for user in queryset:
            token = services.token_rotate(user)
            # Shown once to the administrator, like a password reset; the old token
            # stops working immediately.
            self.message_user(
                request, f"New API token for {user.username}: {token.key}", messages.SUCCESS
            )
