from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db.models import QuerySet
from django.http import HttpRequest

from teams import services
from teams.models import Membership, Team

User = get_user_model()


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone", "created_at"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "team", "role", "created_at"]
    list_filter = ["team", "role"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


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
