from django.contrib import admin

from notifications.models import Heartbeat


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["name", "last_seen_at", "runs"]
    readonly_fields = ["name", "last_seen_at", "runs"]
