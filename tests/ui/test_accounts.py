import hashlib

from django.test import Client
from django.urls import reverse

from apps.accounts.models import ApiToken
from apps.audit.models import AuditEvent


def test_sign_in_and_out_are_audited(world):
    client = Client()
    response = client.post(reverse("accounts:login"), {"username": "eng", "password": "demo-password"})
    assert response.status_code == 302
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor_username) == ("accounts.signed_in", "eng")
    assert event.context["ip"] == "127.0.0.1"
    client.post(reverse("accounts:logout"))
    event = AuditEvent.objects.order_by("-sequence").first()
    assert (event.action, event.actor_username) == ("accounts.signed_out", "eng")


def test_failed_sign_in_is_audited_with_the_attempted_name(world):
    response = Client().post(reverse("accounts:login"), {"username": "eng", "password": "wrong"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content
    event = AuditEvent.objects.order_by("-sequence").first()
    assert event.action == "accounts.sign_in_failed"
    assert event.actor_id is None and event.changes == {"username": "eng"}
    assert "wrong" not in str(event.changes) + str(event.context)


def test_sign_out_needs_post(world, client_as):
    client = client_as(world.eng)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert client.get(reverse("accounts:tokens")).status_code == 200


def test_sign_in_redirects_to_next(world):
    client = Client()
    url = reverse("audit:list")
    response = client.get(url)
    assert response["Location"] == f"{reverse('accounts:login')}?next={url}"
    response = client.post(
        reverse("accounts:login"), {"username": "gov", "password": "demo-password", "next": url}
    )
    assert response["Location"] == url


def test_token_plaintext_is_shown_once_and_stored_hashed(world, client_as):
    client = client_as(world.eng)
    response = client.post(
        reverse("accounts:tokens"),
        {
            "name": "support bot",
            "team": "support",
            "scopes": ["prompts:read", "logs:write"],
            "expires_in": "30",
        },
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    token = ApiToken.objects.get(name="support bot")
    plaintext = response.context["plaintext"]
    assert plaintext.startswith(f"atl_{token.key}_")
    assert plaintext in response.content.decode()
    assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert plaintext not in str(list(ApiToken.objects.values_list()))
    assert token.scopes == ["logs:write", "prompts:read"] and token.expires_at is not None
    again = client.get(reverse("accounts:tokens")).content.decode()
    assert plaintext not in again
    assert token.display in again and "support bot" in again


def test_token_form_errors_write_nothing(world, client_as):
    before = (ApiToken.objects.count(), AuditEvent.objects.count())
    response = client_as(world.eng).post(reverse("accounts:tokens"), {"name": "x", "team": "support"})
    assert response.status_code == 200
    assert b"This field is required." in response.content
    other_team = client_as(world.eng).post(
        reverse("accounts:tokens"), {"name": "x", "team": "finance", "scopes": ["all"]}
    )
    assert b"Select a valid choice" in other_team.content
    assert (ApiToken.objects.count(), AuditEvent.objects.count()) == before


def test_revoke(world, client_as):
    client = client_as(world.eng)
    client.post(reverse("accounts:tokens"), {"name": "old", "team": "support", "scopes": ["all"]})
    token = ApiToken.objects.get(name="old")
    response = client.post(reverse("accounts:token_revoke", args=[token.pk]), follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    body = response.content.decode()
    assert "revoked" in body and "Revoked" in body
    again = client.post(reverse("accounts:token_revoke", args=[token.pk]), follow=True)
    assert "already revoked" in again.content.decode()


def test_team_admin_sees_the_team_tokens(world, client_as):
    client_as(world.eng).post(
        reverse("accounts:tokens"), {"name": "eng's", "team": "support", "scopes": ["all"]}
    )
    body = client_as(world.admin).get(reverse("accounts:tokens")).content.decode()
    assert "eng&#x27;s" in body and "of eng" in body
