from apps.audit.services import audit_chain_verify
from apps.catalog.selectors import prompt_resolve
from tests.factories import make_approved, make_prompt, put_on_label


def test_resolve_after_approval_and_label(world):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, version, "production", world.gov)
    resolved = prompt_resolve(user=world.eng, name="greeting", label="production")
    assert resolved["version"] == 1
    assert audit_chain_verify().ok
