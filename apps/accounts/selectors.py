"""Who may see and do what. Every other app asks these, never the memberships directly."""

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AnonymousUser
from django.core.cache import cache
from django.db.models import QuerySet

from apps.accounts.models import ApiToken, Membership, Team, User
from apps.accounts.roles import Role
from apps.common import ratelimit

_CACHE_ATTR = "_atalaya_team_roles"


def active_token(user: User | AnonymousUser) -> ApiToken | None:
    """The token a request authenticated with, if any: it narrows the user to one team."""
    return getattr(user, "active_token", None)


def user_team_roles(user: User | AnonymousUser) -> dict[int, frozenset[str]]:
    """{team id: roles} for this user, narrowed to the token's team when acting through a token."""
    if not user.is_authenticated:
        return {}
    cached = getattr(user, _CACHE_ATTR, None)
    if cached is not None:
        return cached
    roles: dict[int, set[str]] = {}
    token = active_token(user)
    memberships = Membership.objects.filter(user_id=user.pk)
    if token is not None:
        memberships = memberships.filter(team_id=token.team_id)
    for team_id, role in memberships.values_list("team_id", "role"):
        roles.setdefault(team_id, set()).add(role)
    result = {team_id: frozenset(r) for team_id, r in roles.items()}
    setattr(user, _CACHE_ATTR, result)
    return result


def user_forget_roles(user: User) -> None:
    if hasattr(user, _CACHE_ATTR):
        delattr(user, _CACHE_ATTR)


def user_has_role(user: User | AnonymousUser, team_id: int | None, roles: Iterable[str]) -> bool:
    if team_id is None:
        return False
    return bool(user_team_roles(user).get(team_id, frozenset()) & set(roles))


def user_team_ids(user: User | AnonymousUser, roles: Iterable[str] | None = None) -> list[int]:
    wanted = set(roles) if roles is not None else None
    return [team_id for team_id, held in user_team_roles(user).items() if wanted is None or held & wanted]


def user_is_admin_anywhere(user: User | AnonymousUser) -> bool:
    return bool(user_team_ids(user, [Role.ADMIN]))


def team_list(*, user: User | AnonymousUser, roles: Iterable[str] | None = None) -> QuerySet[Team]:
    return Team.objects.filter(id__in=user_team_ids(user, roles)).order_by("slug")


def team_get_by_slug(
    *, user: User | AnonymousUser, slug: str, roles: Iterable[str] | None = None
) -> Team | None:
    return team_list(user=user, roles=roles).filter(slug=slug).first()


def token_list(*, user: User) -> QuerySet[ApiToken]:
    """A user's own tokens, and every token of the teams they administer."""
    from django.db.models import Q

    admin_teams = user_team_ids(user, [Role.ADMIN])
    return (
        ApiToken.objects.filter(Q(user=user) | Q(team_id__in=admin_teams))
        .select_related("user", "team")
        .order_by("-created_at")
    )


# Sign-in throttling (the password sign-in page): the locks that apps.accounts.services sets after too
# many failed attempts, kept in the cache.


@dataclass(frozen=True)
class SignInLock:
    until: float  # seconds since the epoch
    scope: str  # "username" or "ip"

    def retry_after(self, now: float) -> int:
        """Whole seconds until attempts are accepted again (at least 1)."""
        return max(1, math.ceil(self.until - now))


def sign_in_subject_key(scope: str, value: str) -> str:
    """The cache key part for a username (case-insensitive) or an address: hashed, so that any text a
    form receives makes a valid key."""
    return f"{scope}:{hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]}"


def sign_in_lock_get(*, username: str, ip: str) -> SignInLock | None:
    """The lock that refuses a sign-in for this username or from this address now, if any (the later one)."""
    now = ratelimit.clock()
    subjects = [("username", username)] if username.strip() else []
    if ip:
        subjects.append(("ip", ip))
    locks = []
    for scope, value in subjects:
        until = cache.get(f"signin:lock:{sign_in_subject_key(scope, value)}")
        if until is not None and until > now:
            locks.append(SignInLock(until=until, scope=scope))
    return max(locks, key=lambda lock: lock.until, default=None)
