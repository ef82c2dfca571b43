"""API v1 for the registry: base models, adapters, versions and alias moves.

Every endpoint × role × own team / other team (status; a refusal changes nothing and writes no audit event;
a read changes nothing and shows nothing of the other team; a write is audited), tokens and their scopes,
bad input (400/422 naming the problem, nothing written), and an alias moved end to end through approval."""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.roles import Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.registry.models import Adapter, AdapterAlias, AdapterVersion, AliasMove, FoundationModel, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.workflows.models import ApprovalRequest
from tests.api.matrix import READERS, ROLES, Operation, call, expect
from tests.factories import make_token, make_world


def registry_snapshot() -> dict[str, Any]:
    return {
        "models": list(
            FoundationModel.objects.order_by("pk").values_list("pk", "team_id", "model_id", "notes")
        ),
        "adapters": list(Adapter.objects.order_by("pk").values_list("pk", "team_id", "name", "description")),
        "versions": list(AdapterVersion.objects.order_by("pk").values_list("pk", "number", "artifact_uri")),
        "aliases": list(AdapterAlias.objects.order_by("pk").values_list("pk", "name", "version_id")),
        "moves": list(AliasMove.objects.order_by("pk").values_list("pk", "status")),
        "requests": list(ApprovalRequest.objects.order_by("pk").values_list("pk", "status")),
        "audit_events": AuditEvent.objects.count(),
    }


@dataclass
class RegistryScene:
    world: Any
    models: dict[str, FoundationModel]  # own/other
    adapters: dict[str, Adapter]


def build_registry_scene(world) -> RegistryScene:
    support_model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.VERTEX,
        model_id="gemini-2.5-flash",
        context_window=1_048_576,
    )
    finance_model = base_model_register(
        actor=world.fin_eng,
        team=world.finance,
        provider=Provider.HUGGING_FACE,
        model_id="ledger/base",
        context_window=8192,
    )
    support_adapter = adapter_create(actor=world.eng, base_model=support_model, name="support-tone")
    finance_adapter = adapter_create(actor=world.fin_eng, base_model=finance_model, name="ledger-tone")
    for adapter, user in ((support_adapter, world.eng), (finance_adapter, world.fin_eng)):
        adapter_version_register(actor=user, adapter=adapter, artifact_uri=f"gs://artifacts/{adapter.name}/1")
    return RegistryScene(
        world=world,
        models={"own": support_model, "other": finance_model},
        adapters={"own": support_adapter, "other": finance_adapter},
    )


@pytest.fixture(scope="module")
def _module_registry_scene(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_registry_scene(make_world())
        transaction.set_rollback(True)


@pytest.fixture
def rs(_module_registry_scene, db) -> RegistryScene:
    for user in _module_registry_scene.world.users.values():
        user_forget_roles(user)
    return _module_registry_scene


def _team(team: str) -> str:
    return "support" if team == "own" else "finance"


def _adapter(s: RegistryScene, team: str) -> int:
    return s.adapters[team].pk


ENDPOINTS = [
    Operation(
        "models_list",
        "get",
        lambda s, t: f"/api/v1/models/?team={_team(t)}",
        own=expect(200),
        other=expect(200),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "models_create",
        "post",
        lambda s, t: "/api/v1/models/",
        body=lambda s, t: {
            "team": _team(t),
            "provider": "vertex",
            "model_id": "gemini-2.5-pro",
            "context_window": 1000,
        },
        own=expect(403, admin=201, eng=201),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "models_retrieve",
        "get",
        lambda s, t: f"/api/v1/models/{s.models[t].pk}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "adapters_list",
        "get",
        lambda s, t: f"/api/v1/adapters/?team={_team(t)}",
        own=expect(200),
        other=expect(200),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "adapters_create",
        "post",
        lambda s, t: "/api/v1/adapters/",
        body=lambda s, t: {"base_model": s.models[t].pk, "name": "fresh", "description": "new"},
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "adapters_retrieve",
        "get",
        lambda s, t: f"/api/v1/adapters/{_adapter(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "adapter_versions_list",
        "get",
        lambda s, t: f"/api/v1/adapters/{_adapter(s, t)}/versions/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "adapter_versions_create",
        "post",
        lambda s, t: f"/api/v1/adapters/{_adapter(s, t)}/versions/",
        body=lambda s, t: {"artifact_uri": "gs://artifacts/new/2", "metrics": {"train_loss": 0.3}},
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "adapter_versions_retrieve",
        "get",
        lambda s, t: f"/api/v1/adapters/{_adapter(s, t)}/versions/1/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "adapter_alias_move",
        "post",
        lambda s, t: f"/api/v1/adapters/{_adapter(s, t)}/aliases/",
        body=lambda s, t: {"alias": "champion", "version": 1, "reason": "best so far"},
        own=expect(403, admin=202, eng=202, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=202,
    ),
]


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, rs, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    client = api_as() if role == "anon" else api_as(getattr(rs.world, role))
    before = registry_snapshot()

    response = call(client, endpoint, rs, team)

    assert response.status_code == expected, response.content
    after = registry_snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        assert after == before, "a refused call changed something"
    elif not endpoint.writes:
        assert after == before, "a read changed something"
        text = json.dumps(response.json())
        assert "ledger" not in text, "the other team's objects showed through"
        if endpoint.name.endswith("_list"):
            found = len(response.json()["results"])
            assert found == (1 if team == "own" and role in READERS else 0)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, rs, api_as):
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(rs.world.eng, rs.world.support, *others))
    before = registry_snapshot()
    response = call(client, endpoint, rs)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert registry_snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user(endpoint, scope, rs, api_as):
    token = make_token(rs.world.eng, rs.world.support, endpoint.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), endpoint, rs)
    assert response.status_code == endpoint.token_status, response.content


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if not e.name.endswith("_list")], ids=lambda e: e.name
)
def test_a_token_stays_in_its_team(endpoint, rs, api_as):
    """eng2 is an engineer in support and finance: their support token sees nothing of finance."""
    token = make_token(rs.world.eng2, rs.world.support, Scope.ALL)
    before = registry_snapshot()
    response = call(api_as(token=token), endpoint, rs, "other")
    assert response.status_code == 404, response.content
    assert registry_snapshot() == before


def test_a_model_is_registered_in_the_tokens_team_by_default(rs, api_as):
    token = make_token(rs.world.eng2, rs.world.support, Scope.MODELS_WRITE)
    response = api_as(token=token).post(
        "/api/v1/models/",
        {"provider": "openai_compatible", "model_id": "vllm/llama", "context_window": 8192},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["team"] == "support"
    assert response.json()["provider"] == "openai_compatible"


BAD_INPUT = [
    ("post", "/api/v1/models/", {"team": "support", "provider": "vertex", "model_id": "x"}, 400, "invalid"),
    (
        "post",
        "/api/v1/models/",
        {"team": "support", "provider": "acme", "model_id": "x", "context_window": 5},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/models/",
        {"team": "support", "provider": "vertex", "model_id": "has space", "context_window": 5},
        422,
        "invalid_model_id",
    ),
    (
        "post",
        "/api/v1/models/",
        {"team": "support", "provider": "vertex", "model_id": "gemini-2.5-flash", "context_window": 5},
        409,
        "model_exists",
    ),
    (
        "post",
        "/api/v1/models/",
        {"team": "nowhere", "provider": "vertex", "model_id": "x", "context_window": 5},
        404,
        "team_not_found",
    ),
    ("post", "/api/v1/models/", "{not json", 400, "malformed_request"),
    ("post", "/api/v1/adapters/", {"base_model": "{own_model}", "name": "Bad Name"}, 422, "invalid_name"),
    (
        "post",
        "/api/v1/adapters/",
        {"base_model": "{own_model}", "name": "support-tone"},
        409,
        "adapter_exists",
    ),
    ("post", "/api/v1/adapters/", {"base_model": 999999, "name": "x"}, 404, "not_found"),
    (
        "post",
        "/api/v1/adapters/",
        {"base_model": "{own_model}", "name": "x", "colour": "red"},
        400,
        "unknown_fields",
    ),
    ("post", "/api/v1/adapters/{own}/versions/", {"artifact_uri": "ftp://x"}, 422, "invalid_artifact_uri"),
    (
        "post",
        "/api/v1/adapters/{own}/versions/",
        {"artifact_uri": "gs://x", "metrics": {"l": "low"}},
        422,
        "invalid_metrics",
    ),
    ("post", "/api/v1/adapters/{own}/aliases/", {"alias": "champion", "version": 7}, 404, "not_found"),
    ("post", "/api/v1/adapters/{own}/aliases/", {"alias": "Champion!", "version": 1}, 422, "invalid_alias"),
    (
        "post",
        "/api/v1/adapters/{own}/aliases/",
        {"alias": "champion", "version": None},
        409,
        "alias_unchanged",
    ),
    ("get", "/api/v1/adapters/?colour=red", None, 400, "unknown_fields"),
    ("get", "/api/v1/models/?provider=acme", None, 400, "invalid"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(method, url, body, status, code, rs, api_as):
    client = api_as(rs.world.eng)
    url = url.replace("{own}", str(rs.adapters["own"].pk))
    if isinstance(body, dict):
        body = {k: (rs.models["own"].pk if v == "{own_model}" else v) for k, v in body.items()}
    before = registry_snapshot()
    if body is None:
        response = getattr(client, method)(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, data=body, content_type="application/json")
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert registry_snapshot() == before


def test_an_alias_moved_through_the_api_from_request_to_approval(rs, api_as):
    adapter = rs.adapters["own"]
    eng = api_as(rs.world.eng)
    created = eng.post(
        f"/api/v1/adapters/{adapter.pk}/versions/",
        {
            "artifact_uri": "gs://artifacts/support-tone/2",
            "metrics": {"train_loss": 0.31, "validation_loss": 0.4},
            "hyperparameters": {"rank": 16},
            "dataset_uri": "bq://project.dataset.train",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["number"] == 2

    moved = eng.post(
        f"/api/v1/adapters/{adapter.pk}/aliases/", {"alias": "champion", "version": 2}, format="json"
    )
    assert moved.status_code == 202, moved.content
    request_id = moved.json()["approval_request"]["id"]
    assert moved.json()["move"] == {
        "id": moved.json()["move"]["id"],
        "alias": "champion",
        "to_version": 2,
        "from_version": None,
        "status": "pending",
    }
    assert eng.get(f"/api/v1/adapters/{adapter.pk}/").json()["aliases"] == {}

    mine = eng.post(f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json")
    assert mine.status_code == 403  # four eyes
    decided = api_as(rs.world.gov).post(
        f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve", "comment": "ok"}, format="json"
    )
    assert decided.status_code == 201, decided.content

    detail = eng.get(f"/api/v1/adapters/{adapter.pk}/").json()
    assert detail["aliases"] == {"champion": 2}
    versions = eng.get(f"/api/v1/adapters/{adapter.pk}/versions/").json()["results"]
    assert [(v["number"], v["aliases"]) for v in versions] == [(2, ["champion"]), (1, [])]
    assert versions[0]["metrics"] == {"train_loss": 0.31, "validation_loss": 0.4}


def test_the_schema_documents_the_registry_endpoints(api_as, rs):
    schema = api_as(rs.world.eng).get("/api/schema/?format=json").json()
    operations = {
        op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op
    }
    assert {e.name for e in ENDPOINTS} <= operations
