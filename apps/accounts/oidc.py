"""Sign-in with Google or any OpenID Connect provider: the glue around mozilla-django-oidc.

The library runs the protocol (authorization code flow with state, nonce and PKCE; the token request;
the ID token's RS256 signature checked against the provider's JWKS; userinfo). This module adds what it
leaves out or what Atalaya needs: configuration from settings (with optional discovery, fetched once per
process), the ID token's issuer and audience checks, users matched by issuer and subject, and the
groups → team roles mapping, which apps.accounts.services.oidc_sign_in() applies and audits.

Off unless OIDC_RP_CLIENT_ID is set: the views answer 404 and the backend authenticates nobody.
"""

import logging
import re
import threading
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.db import IntegrityError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts.models import slug_validator
from apps.accounts.roles import Role
from apps.accounts.services import OidcPolicy, oidc_sign_in, oidc_sign_in_failure_record

logger = logging.getLogger(__name__)

SIGN_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


class OidcProviderUnavailable(Exception):
    """The discovery document could not be read."""


@dataclass(frozen=True)
class OidcConfig:
    client_id: str
    discovery_url: str
    issuers: tuple[str, ...]
    authorization_endpoint: str
    token_endpoint: str
    userinfo_endpoint: str
    jwks_endpoint: str
    policy: OidcPolicy


def group_roles_parse(text: str) -> dict[str, frozenset[tuple[str, str]]]:
    """`group=team:role,group=team:role,…` → {group: {(team, role)}}. A group may appear several times.
    Raises ImproperlyConfigured naming the first bad entry."""
    mapping: dict[str, set[tuple[str, str]]] = {}
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        group, sep, target = entry.rpartition("=")
        team, colon, role = target.strip().partition(":")
        group, team, role = group.strip(), team.strip(), role.strip()
        if not sep or not group or not colon:
            raise ImproperlyConfigured(
                f"OIDC_GROUP_ROLES: {entry!r} is not group=team:role "
                "(e.g. atalaya-support-governance=support:governance)."
            )
        if not re.fullmatch(slug_validator.regex, team):
            raise ImproperlyConfigured(
                f"OIDC_GROUP_ROLES: {entry!r} names {team!r}, which is not a team slug."
            )
        if role not in Role.values:
            raise ImproperlyConfigured(
                f"OIDC_GROUP_ROLES: {entry!r} names the role {role!r}; roles are {', '.join(Role.values)}."
            )
        mapping.setdefault(group, set()).add((team, role))
    return {group: frozenset(pairs) for group, pairs in mapping.items()}


def oidc_config() -> OidcConfig | None:
    """The configuration from settings, checked; None when OIDC is off. Cheap: read at every use, so
    that tests can change settings."""
    client_id = getattr(settings, "OIDC_RP_CLIENT_ID", "")
    if not client_id:
        return None
    discovery_url = settings.OIDC_DISCOVERY_URL
    endpoints = {
        "OIDC_OP_AUTHORIZATION_ENDPOINT": settings.OIDC_OP_AUTHORIZATION_ENDPOINT,
        "OIDC_OP_TOKEN_ENDPOINT": settings.OIDC_OP_TOKEN_ENDPOINT,
        "OIDC_OP_JWKS_ENDPOINT": settings.OIDC_OP_JWKS_ENDPOINT,
    }
    issuers = tuple(i for i in settings.OIDC_OP_ISSUER if i)
    if not discovery_url:
        missing = [name for name, value in endpoints.items() if not value]
        if not issuers:
            missing.insert(0, "OIDC_OP_ISSUER")
        if missing:
            raise ImproperlyConfigured(
                f"OIDC_RP_CLIENT_ID is set: set OIDC_DISCOVERY_URL, or {', '.join(missing)}."
            )
    if settings.OIDC_RP_SIGN_ALGO not in SIGN_ALGORITHMS:
        raise ImproperlyConfigured(f"OIDC_RP_SIGN_ALGO must be one of {', '.join(SIGN_ALGORITHMS)}.")
    policy = OidcPolicy(
        provider_name=settings.OIDC_PROVIDER_NAME,
        group_roles=group_roles_parse(settings.OIDC_GROUP_ROLES),
        groups_claim=settings.OIDC_GROUPS_CLAIM,
        allowed_domains=frozenset(
            d.strip().lower().lstrip("@") for d in settings.OIDC_ALLOWED_DOMAINS if d.strip()
        ),
        domain_claim=settings.OIDC_DOMAIN_CLAIM,
        allow_unmapped=settings.OIDC_ALLOW_UNMAPPED,
    )
    return OidcConfig(
        client_id=client_id,
        discovery_url=discovery_url,
        issuers=issuers,
        authorization_endpoint=endpoints["OIDC_OP_AUTHORIZATION_ENDPOINT"],
        token_endpoint=endpoints["OIDC_OP_TOKEN_ENDPOINT"],
        userinfo_endpoint=settings.OIDC_OP_USER_ENDPOINT,
        jwks_endpoint=endpoints["OIDC_OP_JWKS_ENDPOINT"],
        policy=policy,
    )


def oidc_settings_check() -> None:
    """At startup (AccountsConfig.ready): a bad configuration stops the process with a clear error."""
    config = oidc_config()
    if config is None and not settings.PASSWORD_SIGN_IN:
        raise ImproperlyConfigured(
            "ATALAYA_PASSWORD_SIGN_IN is false and OIDC is not configured (OIDC_RP_CLIENT_ID): nobody could sign in."
        )


_discovered: dict[str, dict[str, Any]] = {}
_discovery_lock = threading.Lock()


def _discovery(url: str) -> dict[str, Any]:
    """The provider's discovery document, fetched once per process (a failure is not remembered)."""
    with _discovery_lock:
        if url not in _discovered:
            try:
                response = requests.get(url, timeout=settings.OIDC_TIMEOUT)
                response.raise_for_status()
                document = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise OidcProviderUnavailable(f"{url}: {exc}") from exc
            missing = [
                k
                for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")
                if not document.get(k)
            ]
            if missing:
                raise OidcProviderUnavailable(f"{url} lacks {', '.join(missing)}")
            _discovered[url] = document
        return _discovered[url]


def discovery_forget() -> None:
    """For tests: the next use fetches the discovery document again."""
    with _discovery_lock:
        _discovered.clear()


def oidc_provider(config: OidcConfig) -> OidcConfig:
    """The configuration with what the discovery document gives where settings left it empty."""
    if not config.discovery_url:
        return config
    document = _discovery(config.discovery_url)
    return OidcConfig(
        client_id=config.client_id,
        discovery_url=config.discovery_url,
        issuers=config.issuers or (document["issuer"],),
        authorization_endpoint=config.authorization_endpoint or document["authorization_endpoint"],
        token_endpoint=config.token_endpoint or document["token_endpoint"],
        userinfo_endpoint=config.userinfo_endpoint or document.get("userinfo_endpoint", ""),
        jwks_endpoint=config.jwks_endpoint or document["jwks_uri"],
        policy=config.policy,
    )


class OidcBackend(OIDCAuthenticationBackend):
    """The library's backend, answering only the callback view, with the provider's endpoints from
    oidc_provider(), the ID token's issuer and audience checked, and the user from oidc_sign_in()."""

    provider: OidcConfig

    def __init__(self, *args, **kwargs):
        # Django builds every backend for every sign-in (passwords too) and for every request of a
        # session: the library's set-up, which may fetch the discovery document, waits for authenticate().
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def get_settings(self, attr, *args):
        provider = getattr(self, "provider", None)
        if provider is not None:
            value = {
                "OIDC_OP_TOKEN_ENDPOINT": provider.token_endpoint,
                "OIDC_OP_USER_ENDPOINT": provider.userinfo_endpoint,
                "OIDC_OP_JWKS_ENDPOINT": provider.jwks_endpoint,
            }.get(attr)
            if value is not None:
                return value
        return import_from_settings(attr, *args)

    def authenticate(self, request, **kwargs):
        # Only the callback view passes the nonce it kept in the session with the state it checked.
        config = oidc_config()
        if config is None or request is None or "nonce" not in kwargs:
            return None
        self.provider = oidc_provider(config)
        super().__init__()
        return super().authenticate(request, **kwargs)

    def verify_token(self, token, **kwargs):
        """The library checks the signature (JWKS), expiry and nonce; the issuer and audience are checked here."""
        payload = super().verify_token(token, **kwargs)
        if payload.get("iss") not in self.provider.issuers:
            raise SuspiciousOperation(
                f"ID token issuer {payload.get('iss')!r} is not the configured provider."
            )
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation(f"ID token audience {audience!r} does not include this client.")
        if len(audiences) > 1 and payload.get("azp") != self.OIDC_RP_CLIENT_ID:
            raise SuspiciousOperation("ID token has several audiences and another authorized party.")
        if not payload.get("sub") or "exp" not in payload:
            raise SuspiciousOperation("ID token lacks sub or exp.")
        return payload

    def get_userinfo(self, access_token, id_token, payload):
        if not self.OIDC_OP_USER_ENDPOINT:
            return {}
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub", payload["sub"]) != payload["sub"]:
            raise SuspiciousOperation("userinfo is about another subject than the ID token.")
        return userinfo

    def get_or_create_user(self, access_token, id_token, payload):
        try:
            userinfo = self.get_userinfo(access_token, id_token, payload)
        except SuspiciousOperation as exc:  # the library would swallow it: record it first
            oidc_sign_in_failure_record(reason=str(exc))
            raise
        claims = {**userinfo, **payload}
        try:
            result = oidc_sign_in(issuer=payload["iss"], claims=claims, policy=self.provider.policy)
        except IntegrityError:
            # Two first sign-ins of the same person at once (two tabs, a double click): the other one
            # created the user and identity first. Its transaction has committed, so this finds them.
            result = oidc_sign_in(issuer=payload["iss"], claims=claims, policy=self.provider.policy)
        if result.user is None:
            self.request.oidc_refusal = result.refusal
        return result.user


def _back_to_sign_in(request: HttpRequest, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("accounts:login")


class OidcStartView(OIDCAuthenticationRequestView):
    """Redirects the browser to the provider's authorization endpoint, with state, nonce and PKCE."""

    def __init__(self, **kwargs):
        View.__init__(self, **kwargs)  # the library's reads the endpoint at construction; get() does here

    def get(self, request):
        config = oidc_config()
        if config is None:
            raise Http404
        try:
            provider = oidc_provider(config)
        except OidcProviderUnavailable as exc:
            logger.warning("OIDC discovery failed: %s", exc)
            return _back_to_sign_in(
                request,
                _("%(provider)s cannot be reached just now. Try again in a moment.")
                % {"provider": config.policy.provider_name},
            )
        self.OIDC_OP_AUTH_ENDPOINT = provider.authorization_endpoint
        self.OIDC_RP_CLIENT_ID = provider.client_id
        return super().get(request)

    def get_extra_params(self, request):
        """Google shows only the accounts of a Workspace domain when asked (`hd`); the ID token is still checked."""
        policy = oidc_config().policy  # type: ignore[union-attr]
        if policy.domain_claim == "hd" and len(policy.allowed_domains) == 1:
            return {"hd": next(iter(policy.allowed_domains))}
        return {}


class OidcCallbackView(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back: the library checks the state and runs the backend.
    Every failure lands on the sign-in page with a message, never a 400 or 500 page."""

    def get(self, request):
        config = oidc_config()
        if config is None:
            raise Http404
        try:
            return super().get(request)
        except (
            SuspiciousOperation,
            jwt.PyJWTError,
            requests.RequestException,
            OidcProviderUnavailable,
        ) as exc:
            logger.warning("OIDC sign-in failed: %s", exc)
            oidc_sign_in_failure_record(reason=f"{type(exc).__name__}: {exc}")
            return _back_to_sign_in(
                request,
                _("Sign-in with %(provider)s failed. Try again, or ask an administrator if it keeps failing.")
                % {"provider": config.policy.provider_name},
            )

    def login_failure(self) -> HttpResponseRedirect:
        refusal = getattr(self.request, "oidc_refusal", "")
        if not refusal:
            provider = oidc_config().policy.provider_name  # type: ignore[union-attr]
            refusal = _("Sign-in with %(provider)s did not complete. Try again.") % {"provider": provider}
        messages.error(self.request, refusal)
        return redirect("accounts:login")
