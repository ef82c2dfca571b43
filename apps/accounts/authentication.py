"""`Authorization: Bearer <token>`: a team-bound, scoped token that acts as its user."""

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from rest_framework import authentication, exceptions

from apps.accounts.models import ApiToken, Membership, Team, User, token_hash


class BearerTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request)
        if not header:
            return None
        parts = header.split()
        if not parts or parts[0].lower() != self.keyword.lower().encode():
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed("Malformed Authorization header: use 'Bearer <token>'.")
        try:
            plaintext = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Malformed token.") from None
        token = self.get_token(token_hash(plaintext))
        now = timezone.now()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed("This token was revoked.")
        if token.expires_at is not None and token.expires_at <= now:
            raise exceptions.AuthenticationFailed("This token has expired.")
        resolution = timedelta(seconds=settings.TOKEN_LAST_USED_RESOLUTION_SECONDS)
        if token.last_used_at is None or now - token.last_used_at > resolution:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        user = token.user
        user.active_token = token
        return user, token

    def get_token(self, digest: str) -> ApiToken | None:
        """The token row with its user and team, by the SHA-256 of the plaintext."""
        return ApiToken.objects.select_related("user", "team").filter(token_hash=digest).first()

    def authenticate_header(self, request):
        return self.keyword


# A short-lived, per-process snapshot of token rows, for the endpoints applications call in a loop
# (prompt resolution). Every check above still runs on every request, against a row that is at most
# TOKEN_CACHE_SECONDS old: a revoked or expired token, a deactivated user or a removed membership stops
# working within that bound in every process, and at once in the process that made the change (saving
# or deleting an ApiToken, User, Membership or Team drops the snapshots, again when it commits). Changes
# made with QuerySet.update() send no signal and rely on the bound alone. The snapshot's user also keeps
# its roles (apps.accounts.selectors.user_team_roles caches them on the instance), so the permission
# check on each request reads memory instead of the memberships table.

TOKEN_CACHE_SECONDS = float(getattr(settings, "TOKEN_CACHE_SECONDS", 2.0))
_TOKEN_CACHE_MAX = 10_000
_tokens: dict[str, tuple[float, ApiToken]] = {}
_tokens_lock = threading.Lock()


def token_cache_clear(**_kwargs) -> None:
    with _tokens_lock:
        _tokens.clear()


def _token_changed(**_kwargs) -> None:
    token_cache_clear()
    transaction.on_commit(token_cache_clear)  # a request between the save and the commit may refill it


for _model in (ApiToken, User, Membership, Team):
    post_save.connect(_token_changed, sender=_model, dispatch_uid=f"token-cache-save-{_model.__name__}")
    post_delete.connect(_token_changed, sender=_model, dispatch_uid=f"token-cache-delete-{_model.__name__}")


class CachedBearerTokenAuthentication(BearerTokenAuthentication):
    """BearerTokenAuthentication over the per-process snapshot above (unknown tokens are not cached)."""

    def get_token(self, digest: str) -> ApiToken | None:
        now = time.monotonic()
        hit = _tokens.get(digest)
        if hit is not None and hit[0] > now:
            return hit[1]
        token = super().get_token(digest)
        if token is not None:
            with _tokens_lock:
                if len(_tokens) >= _TOKEN_CACHE_MAX:
                    _tokens.clear()
                _tokens[digest] = (now + TOKEN_CACHE_SECONDS, token)
        return token
