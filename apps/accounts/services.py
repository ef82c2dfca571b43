"""Writes for accounts: teams, memberships and API tokens; sign-in throttling."""

from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import ApiToken, Membership, Team, User, token_generate
from apps.accounts.roles import TOKEN_ADMINS, Role, Scope
from apps.accounts.selectors import SignInLock, sign_in_subject_key, user_has_role
from apps.audit.services import audit_event_record
from apps.common import ratelimit
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable


@transaction.atomic
def team_create(*, actor: User | None, slug: str, name: str) -> Team:
    try:
        with transaction.atomic():
            team = Team.objects.create(slug=slug, name=name)
    except IntegrityError:
        raise Conflict(f"A team {slug!r} already exists.", code="team_exists") from None
    audit_event_record(
        actor=actor,
        action="accounts.team_created",
        target=team,
        team=team,
        changes={"slug": slug, "name": name},
    )
    return team


@transaction.atomic
def membership_grant(*, actor: User | None, user: User, team: Team, role: str) -> Membership:
    if role not in Role.values:
        raise Unprocessable(f"Unknown role {role!r}.", code="invalid_role")
    if actor is not None and not user_has_role(actor, team.pk, TOKEN_ADMINS):
        raise PermissionDenied("Only the team's administrators can grant roles.")
    membership, created = Membership.objects.get_or_create(user=user, team=team, role=role)
    if created:
        audit_event_record(
            actor=actor,
            action="accounts.membership_granted",
            target=membership,
            team=team,
            changes={"user": user.username, "role": role},
        )
    return membership


def _check_scopes(scopes: list[str]) -> list[str]:
    clean = sorted(set(scopes))
    unknown = [s for s in clean if s not in Scope.values]
    if not clean:
        raise Unprocessable("Give the token at least one scope.", code="invalid_scopes")
    if unknown:
        raise Unprocessable(
            f"Unknown scope: {', '.join(unknown)}.",
            code="invalid_scopes",
            details={"unknown": unknown, "known": list(Scope.values)},
        )
    return clean


@transaction.atomic
def token_create(
    *, actor: User, user: User, team: Team, name: str, scopes: list[str], expires_at: datetime | None = None
) -> tuple[ApiToken, str]:
    """Create a token for `user` in `team`. Returns the row and the plaintext, which is never stored."""
    if actor.pk != user.pk and not user_has_role(actor, team.pk, TOKEN_ADMINS):
        raise PermissionDenied("Only the team's administrators can create tokens for someone else.")
    if not Membership.objects.filter(user=user, team=team).exists():
        raise Unprocessable(f"{user.username} is not a member of {team.slug}.", code="not_a_member")
    if not name.strip() or len(name) > 100:
        raise Unprocessable("Name the token (at most 100 characters).", code="invalid_name")
    if expires_at is not None and expires_at <= timezone.now():
        raise Unprocessable("The expiry must be in the future.", code="invalid_expiry")
    clean = _check_scopes(scopes)
    plaintext, key, hashed = token_generate()
    token = ApiToken.objects.create(
        user=user,
        team=team,
        name=name.strip(),
        key=key,
        token_hash=hashed,
        scopes=clean,
        expires_at=expires_at,
        created_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="accounts.token_created",
        target=token,
        team=team,
        changes={
            "user": user.username,
            "name": token.name,
            "scopes": clean,
            "expires_at": expires_at.isoformat() if expires_at else None,
        },
    )
    return token, plaintext


@transaction.atomic
def token_revoke(*, actor: User, token_id: int) -> ApiToken:
    token = ApiToken.objects.select_for_update().select_related("team", "user").filter(pk=token_id).first()
    if token is None or (token.user_id != actor.pk and not user_has_role(actor, token.team_id, TOKEN_ADMINS)):
        raise NotFound("No such token.")
    if token.revoked_at is not None:
        raise Conflict("This token is already revoked.", code="already_revoked")
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="accounts.token_revoked",
        target=token,
        team=token.team,
        changes={"user": token.user.username, "name": token.name},
    )
    return token


SESSION_ACTIONS = {
    "signed_in": "accounts.signed_in",
    "signed_out": "accounts.signed_out",
    "sign_in_failed": "accounts.sign_in_failed",
}


@transaction.atomic
def session_event_record(*, event: str, user: User | None, username: str = "") -> None:
    """Audit a browser sign-in, sign-out or failed sign-in (called from the auth signals)."""
    action = SESSION_ACTIONS[event]
    attempted = (username or (user.get_username() if user is not None else ""))[:150]
    audit_event_record(
        actor=user if event != "sign_in_failed" else None,
        action=action,
        changes={"username": attempted},
    )


# Sign-in throttling: failed password sign-ins are counted per username and per address in fixed windows
# of SIGN_IN_WINDOW_SECONDS (apps.common.ratelimit's counter); the attempt that reaches the limit locks
# that username or address for a whole window from then (apps.accounts.selectors.sign_in_lock_get), and
# the lock is audited. The cache is shared by every process on Redis and per process on the embedded
# default (one process), like the API's rate limits.


@transaction.atomic
def sign_in_failure_record(*, username: str, ip: str) -> SignInLock | None:
    """Count a refused password sign-in; the lock it set, if it reached a limit."""
    window = settings.SIGN_IN_WINDOW_SECONDS
    limits = [("username", username, settings.SIGN_IN_FAILURES_PER_USERNAME)] if username.strip() else []
    if ip:
        limits.append(("ip", ip, settings.SIGN_IN_FAILURES_PER_IP))
    locked = None
    for scope, value, limit in limits:
        subject = sign_in_subject_key(scope, value)
        failures = ratelimit.rate_limit_hit(key=f"signin:{subject}", rate=ratelimit.Rate(limit, window))
        if failures.count != limit:  # below the limit, or already locked by the attempt that reached it
            continue
        until = ratelimit.clock() + window
        cache.set(f"signin:lock:{subject}", until, timeout=window + 1)
        audit_event_record(
            actor=None,
            action="accounts.sign_in_locked",
            changes={
                "username": username[:150],
                "locked": scope,
                "failures": failures.count,
                "window_seconds": window,
                "until": datetime.fromtimestamp(until, tz=UTC).isoformat(timespec="seconds"),
            },
        )
        locked = SignInLock(until=until, scope=scope) if locked is None or until > locked.until else locked
    return locked


def sign_in_success_record(*, username: str) -> None:
    """A successful sign-in starts that username's count of failures again."""
    rate = ratelimit.Rate(settings.SIGN_IN_FAILURES_PER_USERNAME, settings.SIGN_IN_WINDOW_SECONDS)
    ratelimit.rate_limit_reset(key=f"signin:{sign_in_subject_key('username', username)}", rate=rate)
