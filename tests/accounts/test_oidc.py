"""Sign-in through an OpenID Connect provider: mozilla-django-oidc against the fake provider in
tests/accounts/oidc_provider.py over HTTP (discovery, authorization, token, JWKS, userinfo)."""

from urllib.parse import parse_qs, quote, urlencode, urlsplit

import httpx
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import Client
from django.urls import reverse

from apps.accounts.models import OidcIdentity, User
from apps.accounts.oidc import group_roles_parse, oidc_config, oidc_settings_check
from apps.accounts.services import membership_grant
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from tests.accounts.oidc_provider import new_rsa_key
from tests.factories import TeamFactory, UserFactory


@pytest.fixture
def teams(db):
    return TeamFactory(slug="support", name="Support"), TeamFactory(slug="finance", name="Finance")


def sign_in_through(client: Client, provider, *, next_url: str = "", tamper=None):
    """The browser's round trip: Atalaya → the provider's authorization endpoint → Atalaya's callback.
    Returns the callback's response."""
    start = reverse("accounts:oidc_start") + (f"?next={quote(next_url)}" if next_url else "")
    response = client.get(start)
    assert response.status_code == 302, response.content
    at_provider = httpx.get(response["Location"], follow_redirects=False)
    assert at_provider.status_code == 302, at_provider.text
    back = urlsplit(at_provider.headers["Location"])
    assert (back.netloc, back.path) == ("testserver", reverse("accounts:oidc_callback"))
    query = back.query if tamper is None else tamper(back.query)
    return client.get(f"{back.path}?{query}")


def signed_in_as(client: Client) -> User | None:
    user_id = client.session.get("_auth_user_id")
    return User.objects.get(pk=user_id) if user_id else None


def memberships(user: User) -> set[tuple[str, str, str]]:
    return {(m.team.slug, m.role, m.source) for m in user.memberships.select_related("team")}


def actions_since(sequence: int) -> list[str]:
    return list(
        AuditEvent.objects.filter(sequence__gt=sequence).order_by("sequence").values_list("action", flat=True)
    )


def last_sequence() -> int:
    event = AuditEvent.objects.order_by("-sequence").first()
    return event.sequence if event else 0


def refused_page(client: Client, response) -> str:
    assert response.status_code == 302 and response["Location"] == reverse("accounts:login")
    assert signed_in_as(client) is None
    return client.get(response["Location"]).content.decode()


# First and later sign-ins


def test_first_sign_in_creates_the_user_with_the_mapped_memberships(oidc, teams):
    oidc.user["groups"] = ["atalaya-support-governance", "atalaya-finance-engineers", "unrelated"]
    before = last_sequence()
    client = Client()
    response = sign_in_through(client, oidc, next_url=reverse("audit:list"))

    assert response.status_code == 302 and response["Location"] == reverse("audit:list")
    user = signed_in_as(client)
    assert user is not None
    assert (user.username, user.email, user.first_name, user.last_name) == (
        "ana@example.com",
        "ana@example.com",
        "Ana",
        "García",
    )
    assert not user.has_usable_password()
    assert OidcIdentity.objects.get(user=user).issuer == oidc.issuer
    assert OidcIdentity.objects.get(user=user).subject == "10001"
    assert memberships(user) == {("support", "governance", "oidc"), ("finance", "engineer", "oidc")}
    # Governance in support: the audit page they asked for answers.
    assert client.get(reverse("audit:list")).status_code == 200

    assert actions_since(before) == [
        "accounts.user_created",
        "accounts.membership_granted",
        "accounts.membership_granted",
        "accounts.signed_in",
    ]
    signed_in = AuditEvent.objects.get(sequence__gt=before, action="accounts.signed_in")
    assert signed_in.actor_username == "ana@example.com"
    assert signed_in.changes["via"] == "oidc" and signed_in.changes["issuer"] == oidc.issuer
    granted = AuditEvent.objects.filter(sequence__gt=before, action="accounts.membership_granted")
    assert {(e.team_slug, e.changes["role"], e.changes["source"]) for e in granted} == {
        ("support", "governance", "oidc"),
        ("finance", "engineer", "oidc"),
    }
    assert audit_chain_verify().ok

    # What the library sent: the code flow with state, nonce, PKCE and the configured scopes.
    sent = oidc.authorize_requests[-1]
    assert sent["scope"] == "openid email profile" and sent["nonce"] and sent["state"]
    assert sent["code_challenge_method"] == "S256"
    assert oidc.token_requests[-1]["code_verifier"]


def test_later_sign_in_follows_the_groups_and_never_touches_local_memberships(oidc, teams):
    support, _ = teams
    oidc.user["groups"] = ["atalaya-support-governance", "atalaya-finance-engineers"]
    sign_in_through(Client(), oidc)
    user = User.objects.get(oidc_identities__subject="10001")
    membership_grant(actor=None, user=user, team=support, role="annotator")  # granted by an administrator

    # At the provider: moved from support governance to support engineers, out of finance; new e-mail.
    oidc.user.update(groups=["atalaya-support-engineers"], email="ana.garcia@example.com")
    before = last_sequence()
    client = Client()
    sign_in_through(client, oidc)

    assert signed_in_as(client) == user
    user.refresh_from_db()
    assert user.email == "ana.garcia@example.com" and user.username == "ana@example.com"
    assert memberships(user) == {("support", "engineer", "oidc"), ("support", "annotator", "local")}
    assert actions_since(before) == [
        "accounts.user_updated",
        "accounts.membership_role_changed",
        "accounts.membership_revoked",
        "accounts.signed_in",
    ]
    events = {e.action: e for e in AuditEvent.objects.filter(sequence__gt=before)}
    assert events["accounts.user_updated"].changes["to"] == {"email": "ana.garcia@example.com"}
    changed = events["accounts.membership_role_changed"]
    assert (changed.team_slug, changed.changes["role"]) == (
        "support",
        {"from": "governance", "to": "engineer"},
    )
    revoked = events["accounts.membership_revoked"]
    assert (revoked.team_slug, revoked.changes["role"]) == ("finance", "engineer")

    # The same groups again: nothing changes, only the sign-in is recorded.
    before = last_sequence()
    sign_in_through(Client(), oidc)
    assert actions_since(before) == ["accounts.signed_in"]
    assert audit_chain_verify().ok


def test_users_are_matched_by_issuer_and_subject_not_by_email(oidc, teams):
    local = UserFactory(username="ana", email="ana@example.com")  # a password user with the same e-mail
    oidc.user["groups"] = ["atalaya-support-engineers"]
    client = Client()
    sign_in_through(client, oidc)
    first = signed_in_as(client)
    assert first is not None and first != local
    assert not local.memberships.exists()

    # Another person at the provider, given the same address later: another account.
    oidc.user.update(sub="20002")
    client = Client()
    sign_in_through(client, oidc)
    second = signed_in_as(client)
    assert second is not None and second not in (first, local)
    assert second.username != first.username and second.username.startswith("ana@example.com-")


def test_a_local_grant_of_an_oidc_role_keeps_it_when_the_group_goes(oidc, teams):
    support, _ = teams
    oidc.user["groups"] = ["atalaya-support-engineers"]
    sign_in_through(Client(), oidc)
    user = User.objects.get(oidc_identities__subject="10001")
    membership_grant(actor=None, user=user, team=support, role="engineer")
    assert memberships(user) == {("support", "engineer", "local")}
    oidc.user["groups"] = ["atalaya-finance-engineers"]
    sign_in_through(Client(), oidc)
    assert memberships(user) == {("support", "engineer", "local"), ("finance", "engineer", "oidc")}


# Refusals


def test_no_mapped_group_is_refused_and_creates_nobody(oidc, teams):
    oidc.user["groups"] = ["marketing"]
    client = Client()
    before = last_sequence()
    page = refused_page(client, sign_in_through(client, oidc))
    assert "Your Fake IdP account is in no group that gives access to Atalaya" in page
    assert not User.objects.exists()
    assert actions_since(before) == ["accounts.oidc_sign_in_refused"]
    refused = AuditEvent.objects.get(sequence__gt=before)
    assert refused.changes["reason"] == "no group maps to a team role"
    assert refused.changes["email"] == "ana@example.com"


def test_unmapped_users_sign_in_when_allowed(oidc, teams, settings):
    settings.OIDC_ALLOW_UNMAPPED = True
    oidc.user["groups"] = []
    client = Client()
    sign_in_through(client, oidc)
    user = signed_in_as(client)
    assert user is not None and memberships(user) == set()


def test_losing_every_group_removes_the_oidc_roles_and_refuses(oidc, teams):
    support, _ = teams
    oidc.user["groups"] = ["atalaya-support-governance"]
    sign_in_through(Client(), oidc)
    user = User.objects.get(oidc_identities__subject="10001")
    membership_grant(actor=None, user=user, team=support, role="annotator")
    oidc.user["groups"] = []
    before = last_sequence()
    client = Client()
    refused_page(client, sign_in_through(client, oidc))
    assert memberships(user) == {("support", "annotator", "local")}
    assert actions_since(before) == ["accounts.membership_revoked", "accounts.oidc_sign_in_refused"]


def test_a_disabled_user_is_refused(oidc, teams):
    oidc.user["groups"] = ["atalaya-support-engineers"]
    sign_in_through(Client(), oidc)
    User.objects.filter(oidc_identities__subject="10001").update(is_active=False)
    client = Client()
    assert "This account is disabled" in refused_page(client, sign_in_through(client, oidc))


def test_a_mapped_team_that_does_not_exist_is_skipped(oidc, teams, settings):
    settings.OIDC_GROUP_ROLES = "ops=operations:engineer,eng=support:engineer"
    oidc.user["groups"] = ["ops", "eng"]
    client = Client()
    sign_in_through(client, oidc)
    assert memberships(signed_in_as(client)) == {("support", "engineer", "oidc")}


def _replace(query: str, **values: str) -> str:
    params = {k: v[0] for k, v in parse_qs(query).items()}
    params.update(values)
    return urlencode(params)


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("audience", "audience"),
        ("issuer", "issuer"),
        ("nonce", "Nonce"),
        ("signature", "verification failed"),
        ("expired", "expired"),
        ("state", "state"),
    ],
)
def test_tokens_that_fail_the_checks_are_refused(oidc, teams, fault, reason):
    oidc.user["groups"] = ["atalaya-support-governance"]
    tamper = None
    if fault == "audience":
        oidc.id_token_claims = {"aud": "another-client"}
    elif fault == "issuer":
        oidc.id_token_claims = {"iss": "https://evil.example.com"}
    elif fault == "nonce":
        oidc.id_token_claims = {"nonce": "a-nonce-from-another-sign-in"}
    elif fault == "signature":
        oidc.signing_key = new_rsa_key()  # signed by someone else, under the provider's key id
    elif fault == "expired":
        oidc.id_token_claims = {"iat": 1_700_000_000, "exp": 1_700_000_300}
    elif fault == "state":

        def tamper(query):
            return _replace(query, state="forged-state")

    client = Client()
    before = last_sequence()
    page = refused_page(client, sign_in_through(client, oidc, tamper=tamper))
    assert "Sign-in with Fake IdP failed" in page
    assert not User.objects.exists()
    assert actions_since(before) == ["accounts.oidc_sign_in_refused"]
    assert reason in AuditEvent.objects.get(sequence__gt=before).changes["reason"]


def test_a_token_endpoint_that_refuses_the_client_lands_on_the_sign_in_page(oidc, teams, settings):
    settings.OIDC_RP_CLIENT_SECRET = "not-the-secret"
    oidc.user["groups"] = ["atalaya-support-governance"]
    client = Client()
    before = last_sequence()
    assert "Sign-in with Fake IdP failed" in refused_page(client, sign_in_through(client, oidc))
    assert "status: 401" in AuditEvent.objects.get(sequence__gt=before).changes["reason"]


def test_groups_from_userinfo_and_the_client_authenticated_with_basic_auth(oidc, teams, settings):
    settings.OIDC_TOKEN_USE_BASIC_AUTH = True
    oidc.id_token_omits = {"groups", "email", "name", "given_name", "family_name"}
    oidc.user["groups"] = ["atalaya-finance-engineers"]
    client = Client()
    sign_in_through(client, oidc)
    user = signed_in_as(client)
    assert user is not None and user.email == "ana@example.com"
    assert memberships(user) == {("finance", "engineer", "oidc")}
    assert "client_secret" not in oidc.token_requests[-1]


def test_a_code_cannot_be_replayed(oidc, teams):
    oidc.user["groups"] = ["atalaya-support-engineers"]
    client = Client()
    start = client.get(reverse("accounts:oidc_start"))
    callback = urlsplit(httpx.get(start["Location"], follow_redirects=False).headers["Location"])
    assert client.get(f"{callback.path}?{callback.query}").status_code == 302
    assert signed_in_as(client) is not None
    client.post(reverse("accounts:logout"))
    again = client.get(f"{callback.path}?{callback.query}")
    assert again.status_code == 302 and again["Location"] == reverse("accounts:login")
    assert signed_in_as(client) is None


def test_the_provider_saying_no_lands_on_the_sign_in_page(oidc, teams):
    client = Client()
    client.get(reverse("accounts:oidc_start"))
    response = client.get(reverse("accounts:oidc_callback") + "?error=access_denied&state=x")
    assert "Sign-in with Fake IdP did not complete" in refused_page(client, response)


# Domains


def test_allowed_domains_check_the_verified_email(oidc, teams, settings):
    settings.OIDC_ALLOWED_DOMAINS = ["example.com"]
    oidc.user.update(groups=["atalaya-support-engineers"], email="ana@gmail.com")
    client = Client()
    page = refused_page(client, sign_in_through(client, oidc))
    assert "not in a domain allowed to sign in" in page
    assert not User.objects.exists()

    oidc.user.update(email="ana@example.com", email_verified=False)  # unverified: no domain at all
    refused_page(client, sign_in_through(client, oidc))

    oidc.user.update(email_verified=True)
    sign_in_through(client, oidc)
    assert signed_in_as(client) is not None


def test_google_workspace_domain_from_the_hd_claim(oidc, teams, settings):
    settings.OIDC_ALLOWED_DOMAINS = ["example.com"]
    settings.OIDC_DOMAIN_CLAIM = "hd"
    settings.OIDC_GROUP_ROLES = "@example.com=support:engineer"  # everyone of the Workspace domain
    # A personal Google account with a verified example.com address carries no `hd`: refused.
    oidc.user.pop("groups")
    client = Client()
    refused_page(client, sign_in_through(client, oidc))
    assert parse_qs(urlsplit(client.get(reverse("accounts:oidc_start"))["Location"]).query)["hd"] == [
        "example.com"
    ]

    oidc.user["hd"] = "example.com"
    sign_in_through(client, oidc)
    user = signed_in_as(client)
    assert user is not None and memberships(user) == {("support", "engineer", "oidc")}


# Configuration


def test_discovery_is_fetched_once_and_gives_the_endpoints(settings, provider, teams):
    from tests.accounts.oidc_provider import oidc_settings_apply

    oidc_settings_apply(settings, provider, discovery=True)
    assert not settings.OIDC_OP_TOKEN_ENDPOINT
    provider.user["groups"] = ["atalaya-support-engineers"]
    for _ in range(2):
        client = Client()
        sign_in_through(client, provider)
        assert signed_in_as(client) is not None
    assert provider.discovery_fetches == 1


def test_an_unreachable_provider_sends_back_to_the_sign_in_page(settings, db):
    settings.OIDC_RP_CLIENT_ID = "atalaya"
    settings.OIDC_DISCOVERY_URL = "http://127.0.0.1:9/.well-known/openid-configuration"
    settings.OIDC_PROVIDER_NAME = "Okta"
    settings.OIDC_TIMEOUT = 2.0
    client = Client()
    response = client.get(reverse("accounts:oidc_start"))
    assert "Okta cannot be reached just now" in refused_page(client, response)


def test_off_by_default(db):
    client = Client()
    assert oidc_config() is None
    assert client.get(reverse("accounts:oidc_start")).status_code == 404
    assert client.get(reverse("accounts:oidc_callback") + "?code=x&state=y").status_code == 404
    assert "Sign in with" not in client.get(reverse("accounts:login")).content.decode()


def test_the_sign_in_page_offers_the_provider_and_passwords(oidc, teams):
    page = Client().get(reverse("accounts:login") + "?next=/audit/").content.decode()
    assert f'href="{reverse("accounts:oidc_start")}?next=/audit/"' in page
    assert "Sign in with Fake IdP" in page
    assert 'name="password"' in page
    spanish = Client(headers={"accept-language": "es"}).get(reverse("accounts:login")).content.decode()
    assert "Iniciar sesión con Fake IdP" in spanish


def test_password_sign_in_can_be_turned_off(oidc, teams, settings):
    settings.PASSWORD_SIGN_IN = False
    settings.AUTHENTICATION_BACKENDS = ["apps.accounts.oidc.OidcBackend"]
    UserFactory(username="eng")
    client = Client()
    page = client.get(reverse("accounts:login")).content.decode()
    assert "Sign in with Fake IdP" in page and 'name="password"' not in page
    response = client.post(reverse("accounts:login"), {"username": "eng", "password": "demo-password"})
    assert response.status_code == 200 and signed_in_as(client) is None


def test_password_sign_in_off_without_oidc_stops_the_process(settings):
    settings.PASSWORD_SIGN_IN = False
    with pytest.raises(ImproperlyConfigured, match="nobody could sign in"):
        oidc_settings_check()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("admins", "'admins' is not group=team:role"),
        ("admins=support", "'admins=support' is not group=team:role"),
        ("admins=support:owner", "'admins=support:owner' names the role 'owner'"),
        (
            "ok=support:admin,x=Bad Team:admin",
            "'x=Bad Team:admin' names 'Bad Team', which is not a team slug",
        ),
    ],
)
def test_group_roles_are_checked_naming_the_bad_entry(value, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        group_roles_parse(value)


def test_group_roles_parse():
    assert group_roles_parse(
        " atalaya/gov@example.com = support:governance , eng=support:engineer,eng=finance:engineer, "
    ) == {
        "atalaya/gov@example.com": frozenset({("support", "governance")}),
        "eng": frozenset({("support", "engineer"), ("finance", "engineer")}),
    }


def test_missing_endpoints_are_named(settings):
    settings.OIDC_RP_CLIENT_ID = "atalaya"
    settings.OIDC_OP_AUTHORIZATION_ENDPOINT = "https://accounts.google.com/o/oauth2/v2/auth"
    with pytest.raises(ImproperlyConfigured) as error:
        oidc_config()
    assert str(error.value) == (
        "OIDC_RP_CLIENT_ID is set: set OIDC_DISCOVERY_URL, or OIDC_OP_ISSUER, OIDC_OP_TOKEN_ENDPOINT, "
        "OIDC_OP_JWKS_ENDPOINT."
    )


def test_a_first_sign_in_that_loses_the_race_finds_the_winners_user(oidc, teams, monkeypatch):
    """A double click on "Sign in with …" (or two tabs) on PostgreSQL: the other sign-in inserts the
    identity between this one's lookup and its insert, whose unique constraint then fails. Here the other
    sign-in runs to its end and this one's insert fails as it would; the sign-in must then find that user
    instead of answering 500."""
    from django.db import IntegrityError

    from apps.accounts import oidc as oidc_module

    oidc.user["groups"] = ["atalaya-support-governance"]
    real_sign_in = oidc_module.oidc_sign_in
    calls = []

    def losing_first(**kwargs):
        calls.append(kwargs["claims"]["sub"])
        if len(calls) == 1:
            real_sign_in(**kwargs)  # the other tab wins…
            raise IntegrityError(
                "UNIQUE constraint failed: accounts_oidcidentity.issuer, subject"
            )  # …this loses
        return real_sign_in(**kwargs)

    monkeypatch.setattr(oidc_module, "oidc_sign_in", losing_first)
    client = Client()
    response = sign_in_through(client, oidc)

    assert response.status_code == 302 and response["Location"] != reverse("accounts:login")
    assert calls == ["10001", "10001"]
    identity = OidcIdentity.objects.get(subject="10001")
    assert signed_in_as(client) == identity.user and User.objects.count() == 1
