"""The audit trail is read-only in the admin: no add, change or delete."""

from django.contrib import admin

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("sequence", "occurred_at", "actor_username", "team_slug", "action", "target_repr")
    list_filter = ("action", "team_slug")
    search_fields = ("target_repr", "actor_username")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
