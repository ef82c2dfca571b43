from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from apps.accounts.models import ApiToken, Membership, OidcIdentity, Team, User


class MembershipInline(admin.TabularInline):
    """Roles added here are local; those from the sign-in provider's groups change at each sign-in."""

    model = Membership
    extra = 0
    readonly_fields = ("source",)


class OidcIdentityInline(admin.TabularInline):
    model = OidcIdentity
    extra = 0
    readonly_fields = ("issuer", "subject", "last_sign_in_at")
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(User)
class AtalayaUserAdmin(UserAdmin):
    inlines = [MembershipInline, OidcIdentityInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("slug", "name", "created_at")
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are created with `create_token` or the Tokens page (shown once); here they can only be read."""

    list_display = ("name", "display", "user", "team", "scopes", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = [f.name for f in ApiToken._meta.fields]
    exclude = ("token_hash",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
