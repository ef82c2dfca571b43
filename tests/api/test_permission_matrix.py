"""Every endpoint × every role × own team / other team, and every endpoint × token scopes.

Asserts the status; that a refusal changed nothing and wrote no audit event; that a read changed
nothing; that a write was audited; and that nothing of the other team shows through a list."""

import pytest

from apps.accounts.roles import Scope
from tests.api.conftest import snapshot
from tests.api.endpoints import ENDPOINTS, READERS, ROLES, call
from tests.factories import make_token


def _client(api_as, world, role):
    return api_as() if role == "anon" else api_as(getattr(world, role))


def _check_lists(endpoint, response, scene, role, team):
    """What a successful list may show: only the caller's teams, only to those who may read it."""
    body = response.json()
    if endpoint.name == "prompts_list":
        names = [p["name"] for p in body["results"]]
        assert names == (["greeting"] if team == "own" and role in READERS else [])
    elif endpoint.name == "approvals_list":
        ids = {r["id"] for r in body["results"]}
        assert scene.finance_decide_request.pk not in ids
        assert scene.finance_withdraw_request.pk not in ids
        if role in READERS:
            assert scene.support_decide_request.pk in ids
        else:
            assert ids == set()
    elif endpoint.name == "audit_list":
        teams = {event["team"] for event in body["results"]}
        assert teams == ({"support"} if team == "own" else set())
    elif endpoint.name == "tokens_list":
        ids = {t["id"] for t in body["results"]}
        assert scene.finance_token.pk not in ids
        assert (scene.support_token.pk in ids) == (role == "admin")
        assert all("hash" not in key for t in body["results"] for key in t)
    elif endpoint.name in {"prompts_retrieve", "prompts_resolve", "prompts_render"}:
        assert "ledger" not in response.content.decode()


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, scene, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    client = _client(api_as, scene.world, role)
    before = snapshot()

    response = call(client, endpoint, scene, team)

    assert response.status_code == expected, response.content
    after = snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        if expected == 401:
            assert body["error"]["code"] == "not_authenticated"
        assert after == before, "a refused call changed something"
    elif not endpoint.writes:
        assert after == before, "a read changed something"
        _check_lists(endpoint, response, scene, role, team)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"


# Tokens: a token acts as its user within its team, and only within its scopes.

SCOPED = [e for e in ENDPOINTS if e.scope != "session"]
SESSION_ONLY = [e for e in ENDPOINTS if e.scope == "session"]
ONE_TEAMS_OBJECT = [e for e in SCOPED if not e.name.startswith("audit") and not e.name.endswith("_list")]


@pytest.mark.parametrize("endpoint", SCOPED, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, scene, api_as):
    user = getattr(scene.world, endpoint.token_user)
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(user, scene.world.support, *others))
    before = snapshot()

    response = call(client, endpoint, scene)

    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("endpoint", SCOPED, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user(endpoint, scope, scene, api_as):
    user = getattr(scene.world, endpoint.token_user)
    token = make_token(user, scene.world.support, endpoint.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), endpoint, scene)
    assert response.status_code == endpoint.token_status, response.content


@pytest.mark.parametrize("endpoint", ONE_TEAMS_OBJECT, ids=lambda e: e.name)
def test_a_token_stays_in_its_team(endpoint, scene, api_as):
    """eng2 is an engineer in support and finance: their support token sees nothing of finance."""
    token = make_token(scene.world.eng2, scene.world.support, Scope.ALL)
    before = snapshot()
    response = call(api_as(token=token), endpoint, scene, "other")
    assert response.status_code == 404, response.content
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", SESSION_ONLY, ids=lambda e: e.name)
def test_tokens_cannot_manage_tokens(endpoint, scene, api_as):
    token = make_token(scene.world.admin, scene.world.support, Scope.ALL)
    before = snapshot()
    response = call(api_as(token=token), endpoint, scene)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "session_required"
    assert snapshot() == before


def test_a_revoked_or_unknown_token_is_refused(scene, api_as):
    before = snapshot()
    response = api_as(token="atl_000000000000_nope").get("/api/v1/prompts/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"] == "Bearer"
    assert snapshot() == before
