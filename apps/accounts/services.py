"""Writes for accounts: teams, memberships, API tokens, sign-in through an OpenID Connect provider, and
sign-in throttling."""

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import ApiToken, Membership, OidcIdentity, Team, User, token_generate
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
    elif membership.source != Membership.Source.LOCAL:
        # Granted here as well: from now on it stays when the provider's groups no longer give it.
        membership.source = Membership.Source.LOCAL
        membership.save(update_fields=["source", "updated_at"])
        audit_event_record(
            actor=actor,
            action="accounts.membership_granted",
            target=membership,
            team=team,
            changes={"user": user.username, "role": role, "source": {"from": "oidc", "to": "local"}},
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
    token = (
        ApiToken.objects.select_for_update(of=("self",))
        .select_related("team", "user")
        .filter(pk=token_id)
        .first()
    )
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


# Sign-in through an OpenID Connect provider (the protocol is apps/accounts/oidc.py's; this is what a
# validated ID token may do here).

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OidcPolicy:
    """Who may sign in through the provider, and which team roles its groups give.

    `group_roles` maps a group (a value of the groups claim, or "@domain" for everyone of a verified
    domain) to (team slug, role) pairs. Built from settings by apps.accounts.oidc.oidc_config().
    """

    provider_name: str
    group_roles: Mapping[str, frozenset[tuple[str, str]]] = field(default_factory=dict)
    groups_claim: str = "groups"
    allowed_domains: frozenset[str] = frozenset()
    domain_claim: str = ""  # "hd" for Google Workspace; empty: the domain of a verified e-mail
    allow_unmapped: bool = False


@dataclass(frozen=True)
class OidcSignIn:
    """The outcome: the user to sign in, or why not (a sentence for the sign-in page)."""

    user: User | None
    refusal: str = ""


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def oidc_claims_domain(*, claims: Mapping[str, Any], policy: OidcPolicy) -> str:
    """The user's domain as the provider vouches for it: the `domain_claim` (Google's `hd`, set only
    for Workspace accounts), else the domain of a verified e-mail address; "" when there is none."""
    if policy.domain_claim:
        return str(claims.get(policy.domain_claim) or "").strip().lower()
    email = str(claims.get("email") or "")
    if "@" in email and _truthy(claims.get("email_verified")):
        return email.rsplit("@", 1)[1].strip().lower()
    return ""


def oidc_claims_groups(*, claims: Mapping[str, Any], policy: OidcPolicy) -> set[str]:
    """The groups claim (a list, or one string), plus "@domain" for the verified domain."""
    raw = claims.get(policy.groups_claim) or []
    groups = {raw} if isinstance(raw, str) else {str(g) for g in raw if isinstance(g, str | int)}
    domain = oidc_claims_domain(claims=claims, policy=policy)
    if domain:
        groups.add(f"@{domain}")
    return groups


def _oidc_username(*, claims: Mapping[str, Any], issuer: str, subject: str) -> str:
    """A readable, unique username: the e-mail (or preferred_username); the subject's digest breaks ties."""
    digest = hashlib.sha256(f"{issuer} {subject}".encode()).hexdigest()[:10]
    base = str(claims.get("email") or claims.get("preferred_username") or "").strip()[:150]
    if not base:
        return f"oidc-{digest}"
    candidate = base
    suffix = 1
    while User.objects.filter(username__iexact=candidate).exists():
        tail = f"-{digest}" if suffix == 1 else f"-{digest}-{suffix}"
        candidate = base[: 150 - len(tail)] + tail
        suffix += 1
    return candidate


def _oidc_profile(claims: Mapping[str, Any]) -> dict[str, str]:
    """The user's fields the provider's claims set (only those the claims carry)."""
    profile: dict[str, str] = {}
    if "email" in claims:
        profile["email"] = str(claims.get("email") or "")[:254]
    if "given_name" in claims or "name" in claims:
        profile["first_name"] = str(claims.get("given_name") or claims.get("name") or "")[:150]
    if "family_name" in claims:
        profile["last_name"] = str(claims.get("family_name") or "")[:150]
    return profile


def _oidc_memberships_sync(
    *, user: User, wanted: Mapping[tuple[int, str], list[str]], teams: Mapping[int, Team]
) -> None:
    """Make the user's OIDC memberships exactly `wanted` ({(team id, role): groups giving it}).
    Local memberships are never changed; a wanted role already granted locally needs nothing."""
    current = {
        (m.team_id, m.role): m
        for m in Membership.objects.select_for_update().filter(user=user).select_related("team")
    }
    stale = sorted(
        (m for key, m in current.items() if m.source == Membership.Source.OIDC and key not in wanted),
        key=lambda m: (m.team_id, m.role),
    )
    missing = sorted(key for key in wanted if key not in current)
    # In one team, a role that went away and one that came are a role change of the same membership.
    for membership in list(stale):
        replacement = next((key for key in missing if key[0] == membership.team_id), None)
        if replacement is None:
            continue
        stale.remove(membership)
        missing.remove(replacement)
        before = membership.role
        membership.role = replacement[1]
        membership.save(update_fields=["role", "updated_at"])
        audit_event_record(
            actor=user,
            action="accounts.membership_role_changed",
            target=membership,
            team=membership.team,
            changes={
                "user": user.username,
                "role": {"from": before, "to": membership.role},
                "source": "oidc",
                "groups": wanted[replacement],
            },
        )
    for membership in stale:
        audit_event_record(
            actor=user,
            action="accounts.membership_revoked",
            target=membership,
            team=membership.team,
            changes={"user": user.username, "role": membership.role, "source": "oidc"},
        )
        membership.delete()
    for team_id, role in missing:
        membership = Membership.objects.create(
            user=user, team=teams[team_id], role=role, source=Membership.Source.OIDC
        )
        audit_event_record(
            actor=user,
            action="accounts.membership_granted",
            target=membership,
            team=membership.team,
            changes={
                "user": user.username,
                "role": role,
                "source": "oidc",
                "groups": wanted[(team_id, role)],
            },
        )


def _oidc_wanted(
    *, groups: set[str], policy: OidcPolicy
) -> tuple[dict[tuple[int, str], list[str]], dict[int, Team]]:
    """{(team id, role): the groups that give it}, and the teams, for the mapped groups. A team named
    by the mapping that does not exist is skipped (and logged)."""
    pairs: dict[tuple[str, str], list[str]] = {}
    for group in sorted(groups):
        for pair in sorted(policy.group_roles.get(group, ())):
            pairs.setdefault(pair, []).append(group)
    slugs = {slug for slug, _role in pairs}
    teams = {team.slug: team for team in Team.objects.filter(slug__in=slugs)}
    for slug in sorted(slugs - set(teams)):
        logger.warning("OIDC_GROUP_ROLES names the team %r, which does not exist: ignored", slug)
    wanted = {(teams[slug].pk, role): given for (slug, role), given in pairs.items() if slug in teams}
    return wanted, {team.pk: team for team in teams.values()}


def _oidc_unmapped_message(provider: str) -> str:
    return _(
        "Your %(provider)s account is in no group that gives access to Atalaya. "
        "Ask an administrator to add you to one."
    ) % {"provider": provider}


@transaction.atomic
def oidc_sign_in(*, issuer: str, claims: Mapping[str, Any], policy: OidcPolicy) -> OidcSignIn:
    """Sign-in with the claims of a validated ID token (and userinfo) from `issuer`.

    The user is found by issuer and subject, never by e-mail (created on the first sign-in); their
    e-mail and name follow the claims; their OIDC memberships are synchronised with the groups the
    claims carry (added, role changed, removed when the group is gone), and locally granted ones are
    never touched. Refused, and audited, when the domain is not allowed, when no group maps to a team
    role (unless `policy.allow_unmapped`), or when the user is disabled. A returning user's memberships
    are synchronised even when the sign-in is refused, so that access the provider took away is gone.
    """
    subject = str(claims.get("sub") or "")
    identity = (
        OidcIdentity.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(issuer=issuer, subject=subject)
        .first()
    )
    user = identity.user if identity is not None else None

    def refuse(reason: str, message: str) -> OidcSignIn:
        audit_event_record(
            actor=user,
            action="accounts.oidc_sign_in_refused",
            target=user,
            changes={
                "issuer": issuer,
                "subject": subject,
                "email": str(claims.get("email") or ""),
                "reason": reason,
            },
        )
        return OidcSignIn(user=None, refusal=message)

    domain = oidc_claims_domain(claims=claims, policy=policy)
    if policy.allowed_domains and domain not in policy.allowed_domains:
        return refuse(
            f"domain {domain or '(none)'} is not allowed",
            _("Your %(provider)s account is not in a domain allowed to sign in to Atalaya.")
            % {"provider": policy.provider_name},
        )
    groups = oidc_claims_groups(claims=claims, policy=policy)
    wanted, teams = _oidc_wanted(groups=groups, policy=policy)
    unmapped = not wanted and not policy.allow_unmapped

    if identity is None:
        if unmapped:
            return refuse("no group maps to a team role", _oidc_unmapped_message(policy.provider_name))
        user = User(
            username=_oidc_username(claims=claims, issuer=issuer, subject=subject), **_oidc_profile(claims)
        )
        user.set_unusable_password()
        user.save()
        identity = OidcIdentity.objects.create(user=user, issuer=issuer, subject=subject)
        audit_event_record(
            actor=user,
            action="accounts.user_created",
            target=user,
            changes={"username": user.username, "email": user.email, "issuer": issuer, "subject": subject},
        )
    else:
        user = identity.user
        profile = _oidc_profile(claims)
        before = {key: getattr(user, key) for key, value in profile.items() if getattr(user, key) != value}
        if before:
            for key in before:
                setattr(user, key, profile[key])
            user.save(update_fields=list(before))
            audit_event_record(
                actor=user,
                action="accounts.user_updated",
                target=user,
                changes={"from": before, "to": {key: profile[key] for key in before}, "source": "oidc"},
            )

    _oidc_memberships_sync(user=user, wanted=wanted, teams=teams)
    if unmapped:
        return refuse("no group maps to a team role", _oidc_unmapped_message(policy.provider_name))
    if not user.is_active:
        return refuse("the user is disabled", _("This account is disabled. Ask an administrator."))
    identity.last_sign_in_at = timezone.now()
    identity.save(update_fields=["last_sign_in_at", "updated_at"])
    audit_event_record(
        actor=user,
        action="accounts.signed_in",
        target=user,
        changes={"username": user.username, "via": "oidc", "issuer": issuer, "groups": sorted(groups)},
    )
    return OidcSignIn(user=user)


@transaction.atomic
def oidc_sign_in_failure_record(*, reason: str) -> None:
    """Audit a sign-in through the provider that failed its checks (state, signature, issuer, audience,
    nonce…) before any user could be known."""
    audit_event_record(actor=None, action="accounts.oidc_sign_in_refused", changes={"reason": reason[:500]})


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
