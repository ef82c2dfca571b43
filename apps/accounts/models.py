import hashlib
import secrets

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import Role
from apps.common.models import BaseModel

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,62}$", _("Use lowercase letters, digits, '-' and '_' (at most 63).")
)


class User(AbstractUser):
    """A person. What they may do depends on their memberships (roles per team)."""

    class Meta:
        ordering = ["username"]


class Team(BaseModel):
    slug = models.CharField(max_length=63, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug


class Membership(BaseModel):
    class Source(models.TextChoices):
        LOCAL = "local", _("Granted in Atalaya")
        OIDC = "oidc", _("From the sign-in provider's groups")

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=32, choices=Role.choices)
    # OIDC memberships follow the provider's groups at every sign-in; local ones (an administrator,
    # seed_demo) are never touched by that synchronisation.
    source = models.CharField(max_length=8, choices=Source.choices, default=Source.LOCAL)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "team", "role"], name="membership_unique_role")
        ]
        ordering = ["team__slug", "user__username", "role"]

    def __str__(self) -> str:
        return f"{self.user} {self.role}@{self.team}"


class OidcIdentity(BaseModel):
    """Who a user is at an OpenID Connect provider: the ID token's issuer and subject, never the
    e-mail address (which the provider may reassign)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="oidc_identities")
    issuer = models.CharField(max_length=255)
    subject = models.CharField(max_length=255)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["issuer", "subject"], name="oidc_identity_unique_subject")
        ]
        ordering = ["issuer", "subject"]

    def __str__(self) -> str:
        return f"{self.subject}@{self.issuer}"


TOKEN_PREFIX = "atl"  # nosec B105 # the public prefix of every token, not a secret


def token_hash(secret: str) -> str:
    """Tokens carry 256 bits of randomness, so one round of SHA-256 is enough (no slow KDF needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def token_generate() -> tuple[str, str, str]:
    """Return (plaintext, lookup key, hash). The plaintext is shown once and never stored."""
    key = secrets.token_hex(6)
    plaintext = f"{TOKEN_PREFIX}_{key}_{secrets.token_urlsafe(32)}"
    return plaintext, key, token_hash(plaintext)


class ApiToken(BaseModel):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=16, unique=True, help_text="Public lookup part of the token.")
    token_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({TOKEN_PREFIX}_{self.key}_…)"

    @property
    def display(self) -> str:
        return f"{TOKEN_PREFIX}_{self.key}_…"

    def is_active(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def allows(self, scope: str) -> bool:
        return "all" in self.scopes or scope in self.scopes
