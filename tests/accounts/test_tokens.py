from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import ApiToken, token_hash
from apps.accounts.services import token_create, token_revoke
from apps.audit.models import AuditEvent
from apps.common.exceptions import NotFound, PermissionDenied, Unprocessable
from tests.factories import make_approved, make_prompt, put_on_label

URL = "/api/v1/prompts/greeting/resolve"


@pytest.fixture
def published(world):
    prompt = make_prompt(world.support, world.eng)
    put_on_label(prompt, make_approved(prompt, world.eng, world.gov), "production", world.gov)


def test_tokens_are_stored_hashed_and_shown_once(world):
    token, plaintext = token_create(
        actor=world.eng, user=world.eng, team=world.support, name="app", scopes=["prompts:read"]
    )
    assert plaintext.startswith(f"atl_{token.key}_")
    stored = ApiToken.objects.get(pk=token.pk)
    assert stored.token_hash == token_hash(plaintext)
    assert plaintext not in str(ApiToken.objects.filter(pk=token.pk).values().get())
    event = AuditEvent.objects.get(action="accounts.token_created")
    assert plaintext not in str(event.changes) + str(event.context)


def test_create_token_command_prints_a_working_token(world, published, api_as, capsys):
    call_command("create_token", "--user", "eng", "--team", "support", "--scope", "prompts:read")
    plaintext = capsys.readouterr().out.strip()
    assert api_as(token=plaintext).get(URL).status_code == 200


def test_expired_revoked_and_wrong_tokens_are_refused(world, published, api_as):
    token, plaintext = token_create(
        actor=world.eng,
        user=world.eng,
        team=world.support,
        name="app",
        scopes=["prompts:read"],
        expires_at=timezone.now() + timedelta(days=1),
    )
    assert api_as(token=plaintext).get(URL).status_code == 200
    token.expires_at = timezone.now() - timedelta(seconds=1)
    token.save()
    expired = api_as(token=plaintext).get(URL)
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]
    _, second = token_create(actor=world.eng, user=world.eng, team=world.support, name="b", scopes=["all"])
    token_revoke(actor=world.eng, token_id=ApiToken.objects.get(name="b").pk)
    assert api_as(token=second).get(URL).status_code == 401
    assert api_as(token=second[:-2] + "xx").get(URL).status_code == 401
    assert api_as(token="garbage").get(URL).status_code == 401


def test_last_used_is_recorded_without_a_write_per_request(
    world, published, api_as, django_assert_max_num_queries
):
    token, plaintext = token_create(
        actor=world.eng, user=world.eng, team=world.support, name="app", scopes=["prompts:read"]
    )
    client = api_as(token=plaintext)
    client.get(URL)
    first = ApiToken.objects.get(pk=token.pk).last_used_at
    assert first is not None
    client.get(URL)
    assert ApiToken.objects.get(pk=token.pk).last_used_at == first  # within the minute: not written again


def test_who_may_create_and_revoke(world):
    with pytest.raises(PermissionDenied):
        token_create(actor=world.eng2, user=world.eng, team=world.support, name="x", scopes=["all"])
    with pytest.raises(Unprocessable):
        token_create(actor=world.fin_eng, user=world.fin_eng, team=world.support, name="x", scopes=["all"])
    with pytest.raises(Unprocessable):
        token_create(actor=world.eng, user=world.eng, team=world.support, name="x", scopes=["everything"])
    token, _ = token_create(
        actor=world.admin, user=world.eng, team=world.support, name="by-admin", scopes=["all"]
    )
    with pytest.raises(NotFound):
        token_revoke(actor=world.eng2, token_id=token.pk)
    assert token_revoke(actor=world.admin, token_id=token.pk).revoked_at is not None
