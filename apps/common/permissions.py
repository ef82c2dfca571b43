"""DRF permission: a token must carry the scope the view names (`required_scope`); sessions pass."""

from rest_framework.permissions import BasePermission

from apps.common.exceptions import PermissionDenied


class HasScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = getattr(request.user, "active_token", None)
        scope = getattr(view, "required_scope", None)
        if token is None or scope is None:
            return True
        if not token.allows(scope):
            raise PermissionDenied(
                f"This token lacks the {scope!r} scope.",
                code="missing_scope",
                details={"required_scope": scope},
            )
        return True
