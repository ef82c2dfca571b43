import pytest
from django.conf import settings
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify, audit_event_record, mask_secrets
from tests.factories import make_approved, make_prompt, put_on_label


@pytest.fixture
def history(world):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, version, "production", world.gov)
    assert AuditEvent.objects.count() >= 8
    return list(AuditEvent.objects.order_by("sequence"))


def test_intact_chain_verifies(history):
    result = audit_chain_verify()
    assert result.ok
    assert result.events_checked == len(history)


@pytest.mark.parametrize(
    "field, value",
    [
        ("action", "catalog.version_rejected"),
        ("actor_username", "mallory"),
        ("changes", {"status": "x"}),
        ("context", {}),
        ("target_id", "999"),
    ],
)
def test_editing_one_field_breaks_the_chain_at_that_event(history, field, value):
    victim = history[4]
    AuditEvent.objects.filter(pk=victim.pk).update(**{field: value})
    result = audit_chain_verify()
    assert not result.ok
    assert result.first_broken_sequence == victim.sequence
    assert "modified" in result.reason


def test_editing_the_timestamp_breaks_the_chain(history):
    from datetime import timedelta

    victim = history[2]
    AuditEvent.objects.filter(pk=victim.pk).update(occurred_at=victim.occurred_at - timedelta(seconds=1))
    assert audit_chain_verify().first_broken_sequence == victim.sequence


def test_rehashing_an_edited_event_is_still_caught_by_the_next_link(history):
    from apps.audit.services import _digest_of

    victim = history[3]
    victim.actor_username = "mallory"
    victim.hash = _digest_of(victim)
    victim.save()
    result = audit_chain_verify()
    assert result.first_broken_sequence == history[4].sequence
    assert "does not link" in result.reason


def test_deleting_a_row_breaks_the_chain_there(history):
    victim = history[5]
    AuditEvent.objects.filter(pk=victim.pk).delete()
    result = audit_chain_verify()
    assert result.first_broken_sequence == victim.sequence
    assert "missing" in result.reason


def test_deleting_the_newest_row_is_detected(history):
    AuditEvent.objects.filter(pk=history[-1].pk).delete()
    result = audit_chain_verify()
    assert not result.ok
    assert result.first_broken_sequence == history[-1].sequence


def test_verify_audit_command_exits_1_and_names_the_event(history, capsys):
    call_command("verify_audit")
    assert "intact" in capsys.readouterr().out
    AuditEvent.objects.filter(pk=history[2].pk).update(target_repr="edited")
    with pytest.raises(SystemExit) as exited:
        call_command("verify_audit")
    assert exited.value.code == 1
    assert f"#{history[2].sequence}" in capsys.readouterr().err


def test_audit_requires_a_transaction_and_a_registered_action(world):
    with pytest.raises(ValueError, match="Unknown audit action"):
        audit_event_record(actor=world.eng, action="catalog.nope")


@pytest.mark.django_db(transaction=True)
def test_audit_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError):
        audit_event_record(actor=None, action="audit.chain_verified")


def test_webhook_urls_are_masked_they_are_secrets():
    assert mask_secrets({"webhook_url": "https://hooks.example.com/T0/B0/XYZ"}) == {"webhook_url": "********"}


def test_secrets_are_masked_at_any_depth():
    masked = mask_secrets(
        {"name": "x", "api_key": "abc", "nested": [{"password": "p", "ok": 1}], "token": ""}
    )
    assert masked == {
        "name": "x",
        "api_key": "********",
        "nested": [{"password": "********", "ok": 1}],
        "token": "",
    }


def test_no_delete_or_change_in_the_admin(admin_client, history):
    event = history[0]
    assert admin_client.get(f"/{settings.ADMIN_URL}audit/auditevent/{event.pk}/delete/").status_code == 403
    response = admin_client.post(
        f"/{settings.ADMIN_URL}audit/auditevent/{event.pk}/change/", {"action": "edited"}
    )
    assert response.status_code == 403
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


def test_events_carry_the_request_context(world, api_as):
    from tests.factories import make_token

    token = make_token(world.eng, world.support, "prompts:write")
    client = api_as(token=token)
    client.post(
        "/api/v1/prompts/",
        {"name": "ctx-check"},
        format="json",
        HTTP_X_REQUEST_ID="req-123",
        REMOTE_ADDR="10.0.0.7",
    )
    event = AuditEvent.objects.filter(action="catalog.prompt_created").order_by("-sequence").first()
    assert event.context["request_id"] == "req-123"
    assert event.context["ip"] == "10.0.0.7"
    assert event.context["bearer"].startswith("atl_")
    assert event.actor_username == "eng"
