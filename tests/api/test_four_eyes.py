"""Four eyes through the API: whoever requested a change can never decide it, whatever roles they
hold in the team (governance and admin included); the refusal is 403 `self_approval` with the reason."""

import pytest

from apps.accounts.roles import Role
from tests.api.conftest import snapshot
from tests.factories import make_prompt, make_token, member

ROLE_SETS = [
    [Role.GOVERNANCE],
    [Role.GOVERNANCE, Role.ADMIN],
    [Role.GOVERNANCE, Role.ADMIN, Role.PRODUCT_OWNER, Role.ANNOTATOR],
]
VERSION = {
    "messages": [{"role": "user", "template": "Summarise {{ ticket }}"}],
    "model": "gemini-2.5-flash",
    "parameters": {},
    "message": "v1",
}


def _author_submits(client) -> int:
    assert (
        client.post("/api/v1/prompts/", {"team": "support", "name": "triage"}, format="json").status_code
        == 201
    )
    version = client.post("/api/v1/prompts/triage/versions/", VERSION, format="json").json()
    response = client.post(f"/api/v1/prompt-versions/{version['id']}/submit/")
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("decision", ["approve", "request_changes", "reject"])
@pytest.mark.parametrize("extra_roles", ROLE_SETS, ids=lambda roles: "+".join(roles))
def test_the_author_cannot_decide_their_own_version(extra_roles, decision, world, api_as):
    member(world.eng, world.support, *extra_roles)
    client = api_as(world.eng)
    request_id = _author_submits(client)
    before = snapshot()

    response = client.post(
        f"/api/v1/approvals/{request_id}/decisions/", {"decision": decision}, format="json"
    )

    assert response.status_code == 403, response.content
    error = response.json()["error"]
    assert error["code"] == "self_approval"
    assert "four eyes" in error["message"]
    assert snapshot() == before
    detail = client.get(f"/api/v1/approvals/{request_id}/").json()
    assert detail["status"] == "open"
    assert detail["can_decide"] is False and "four eyes" in detail["cannot_decide_reason"]
    queue = client.get("/api/v1/approvals/?mine=1").json()["results"]
    assert request_id not in [r["id"] for r in queue]


def test_the_author_cannot_approve_with_a_token_either(world, api_as):
    member(world.eng, world.support, Role.GOVERNANCE, Role.ADMIN)
    request_id = _author_submits(api_as(world.eng))
    token = make_token(world.eng, world.support, "all")
    before = snapshot()
    response = api_as(token=token).post(
        f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_approval"
    assert snapshot() == before


def test_the_requester_of_a_protected_label_move_cannot_approve_it(world, api_as):
    """eng asks to move production; even after being made admin and governance, eng cannot approve
    that request (a governance user would have moved the label directly)."""
    from tests.factories import make_approved

    prompt = make_prompt(world.support, world.eng2)
    make_approved(prompt, world.eng2, world.gov)
    client = api_as(world.eng)
    response = client.put("/api/v1/prompts/greeting/labels/production/", {"version": 1}, format="json")
    assert response.status_code == 202
    request_id = response.json()["approval_request"]
    member(world.eng, world.support, Role.GOVERNANCE, Role.ADMIN)
    before = snapshot()
    response = client.post(
        f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "self_approval"
    assert snapshot() == before
    assert (
        api_as(world.gov)
        .post(f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json")
        .status_code
        == 201
    )
    assert client.get("/api/v1/prompts/greeting/").json()["labels"] == {"production": 1}


def test_someone_else_with_the_approver_role_can(world, api_as):
    request_id = _author_submits(api_as(world.eng))
    response = api_as(world.gov).post(
        f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve", "comment": "ok"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["approval_request"]["status"] == "approved"
