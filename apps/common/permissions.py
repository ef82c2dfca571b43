"""DRF permissions for API v1.

`HasScope`: a token must carry the scope the view names in `required_scope`, either one scope or a
mapping {HTTP method: scope} for a view that serves several operations (HEAD and OPTIONS use GET's;
a method the mapping does not name needs the `all` scope). Sessions pass: what a user may do is
checked by the services and selectors, per team.

`SessionOnly`: for what a token may never do (managing tokens).
"""

from collections.abc import Mapping

from rest_framework.permissions import BasePermission

from apps.common.exceptions import PermissionDenied

_READ_ALIASES = {"HEAD": "GET", "OPTIONS": "GET"}


def view_scope(view, method: str) -> str | None:
    scope = getattr(view, "required_scope", None)
    if isinstance(scope, Mapping):
        scope = scope.get(method) or scope.get(_READ_ALIASES.get(method, ""), None) or "all"
    return str(scope) if scope is not None else None


class HasScope(BasePermission):
    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = getattr(request.user, "active_token", None)
        scope = view_scope(view, request.method)
        if token is None or scope is None:
            return True
        if not token.allows(scope):
            raise PermissionDenied(
                f"This token lacks the {scope!r} scope.",
                code="missing_scope",
                details={"required_scope": scope},
            )
        return True


class SessionOnly(BasePermission):
    """For what a token may never do (managing tokens): a signed-in browser session only."""

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        if getattr(request.user, "active_token", None) is not None:
            raise PermissionDenied(
                "API tokens cannot manage tokens: sign in to the console to do this.",
                code="session_required",
            )
        return True
