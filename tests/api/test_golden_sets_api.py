"""API v1 for golden sets: every endpoint × role × own team / other team (status; a refusal changes
nothing; a read shows nothing of the other team; a write is audited), token scopes, bad input, import
through the API (an error names the line and field) and export (round trip)."""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.roles import Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.evaluation.golden_sets import golden_set_create
from apps.evaluation.models import GoldenCase, GoldenSet, GoldenSetVersion
from tests.api.matrix import READERS, ROLES, Operation, call, expect, team_slug
from tests.evaluation.golden_helpers import CASES
from tests.factories import make_prompt, make_token, make_version, make_world


def golden_snapshot() -> dict[str, Any]:
    return {
        "sets": list(GoldenSet.objects.order_by("pk").values_list("pk", "name", "description")),
        "versions": list(GoldenSetVersion.objects.order_by("pk").values_list("pk", "number", "content_hash")),
        "cases": GoldenCase.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


@dataclass
class GoldenScene:
    world: Any
    sets: dict[str, GoldenSet]  # own/other


def build_scene(world) -> GoldenScene:
    greeting = make_prompt(world.support, world.eng, name="greeting")
    make_version(greeting, world.eng)
    ledger = make_prompt(world.finance, world.fin_eng, name="ledger")
    make_version(ledger, world.fin_eng)
    own = golden_set_create(
        actor=world.eng, team=world.support, name="support-set", prompt=greeting, cases=CASES
    )
    other = golden_set_create(
        actor=world.fin_eng, team=world.finance, name="ledger-set", prompt=ledger, cases=CASES[:1]
    )
    return GoldenScene(world=world, sets={"own": own, "other": other})


@pytest.fixture(scope="module")
def _module_scene(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_scene(make_world())
        transaction.set_rollback(True)


@pytest.fixture
def gs(_module_scene, db) -> GoldenScene:
    for user in _module_scene.world.users.values():
        user_forget_roles(user)
    return _module_scene


def _set(s: GoldenScene, team: str) -> int:
    return s.sets[team].pk


NEW_CASES = [{"name": "new", "must_contain": ["hello"]}]

ENDPOINTS = [
    Operation(
        "golden_sets_list",
        "get",
        lambda s, t: f"/api/v1/golden-sets/?team={team_slug(t)}",
        own=expect(200),
        other=expect(200),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
    Operation(
        "golden_sets_create",
        "post",
        lambda s, t: "/api/v1/golden-sets/",
        body=lambda s, t: {"team": team_slug(t), "name": "fresh", "cases": NEW_CASES},
        own=expect(403, admin=201, eng=201),
        other=expect(404),
        scope=Scope.EVALUATIONS_WRITE,
        token_status=201,
    ),
    Operation(
        "golden_sets_retrieve",
        "get",
        lambda s, t: f"/api/v1/golden-sets/{_set(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
    Operation(
        "golden_set_versions_create",
        "post",
        lambda s, t: f"/api/v1/golden-sets/{_set(s, t)}/versions/",
        body=lambda s, t: {"cases": NEW_CASES, "message": "replace"},
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_WRITE,
        token_status=201,
    ),
    Operation(
        "golden_sets_export",
        "get",
        lambda s, t: f"/api/v1/golden-sets/{_set(s, t)}/export?format=csv",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
]


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, gs, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    client = api_as() if role == "anon" else api_as(getattr(gs.world, role))
    before = golden_snapshot()

    response = call(client, endpoint, gs, team)

    assert response.status_code == expected, response.content
    after = golden_snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        assert after == before, "a refused call changed something"
    elif not endpoint.writes:
        assert after == before, "a read changed something"
        assert "ledger" not in response.content.decode(), "the other team's objects showed through"
        if endpoint.name.endswith("_list"):
            found = len(response.json()["results"])
            assert found == (1 if team == "own" and role in READERS else 0)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"
        assert after["versions"] != before["versions"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, gs, api_as):
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(gs.world.eng, gs.world.support, *others))
    before = golden_snapshot()
    response = call(client, endpoint, gs)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert golden_snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user(endpoint, scope, gs, api_as):
    token = make_token(gs.world.eng, gs.world.support, endpoint.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), endpoint, gs)
    assert response.status_code == endpoint.token_status, response.content


@pytest.mark.parametrize(
    "endpoint", [e for e in ENDPOINTS if not e.name.endswith("_list")], ids=lambda e: e.name
)
def test_a_token_stays_in_its_team(endpoint, gs, api_as):
    """eng2 is an engineer in support and finance: their support token sees nothing of finance."""
    token = make_token(gs.world.eng2, gs.world.support, Scope.ALL)
    before = golden_snapshot()
    response = call(api_as(token=token), endpoint, gs, "other")
    assert response.status_code == 404, response.content
    assert golden_snapshot() == before


def test_the_detail_shows_the_latest_version_and_its_cases(gs, api_as):
    body = api_as(gs.world.owner).get(f"/api/v1/golden-sets/{gs.sets['own'].pk}/").json()
    assert body["team"] == "support" and body["prompt"] == "greeting"
    assert body["latest_version"]["number"] == 1 and body["latest_version"]["case_count"] == 4
    assert [c["name"] for c in body["cases"]] == [c["name"] for c in CASES]
    assert body["cases"][1]["json_schema"]["required"] == ["order"]
    assert body["cases"][0]["position"] == 1


def test_a_set_is_created_in_the_tokens_team_shared_by_default(gs, api_as):
    token = make_token(gs.world.eng2, gs.world.support, Scope.EVALUATIONS_WRITE)
    response = api_as(token=token).post(
        "/api/v1/golden-sets/", {"name": "team-wide", "cases": NEW_CASES}, format="json"
    )
    assert response.status_code == 201, response.content
    assert (response.json()["team"], response.json()["prompt"]) == ("support", None)
    assert response.json()["latest_version"]["case_count"] == 1


def test_an_import_through_the_api_then_export_round_trips(gs, api_as):
    client = api_as(gs.world.eng)
    url = f"/api/v1/golden-sets/{gs.sets['own'].pk}"
    exported = client.get(f"{url}/export?format=jsonl")
    assert exported.status_code == 200
    assert exported["Content-Type"].startswith("application/x-ndjson")
    assert 'filename="support-set-v1.jsonl"' in exported["Content-Disposition"]
    lines = exported.content.decode().splitlines()
    edited = "\n".join([*lines, json.dumps({"name": "added", "rubric": "Be brief."})]) + "\n"
    created = client.post(f"{url}/versions/", {"content": edited, "format": "jsonl"}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["latest_version"]["number"] == 2
    assert [c["name"] for c in created.json()["cases"]][-1] == "added"
    again = client.get(f"{url}/export?format=jsonl&version=2").content.decode()
    assert again.splitlines()[:4] == lines
    csv_v1 = client.get(f"{url}/export?format=csv&version=1")
    assert csv_v1["Content-Type"].startswith("text/csv")
    assert csv_v1.content.decode().startswith("name,variables,reference,")


def test_a_file_posted_as_the_body_is_imported(gs, api_as):
    client = api_as(gs.world.eng)
    url = f"/api/v1/golden-sets/{gs.sets['own'].pk}/versions/"
    csv_body = 'name,must_contain\nfirst,"[""hello""]"\n'
    created = client.post(f"{url}?append=true&message=from+a+file", data=csv_body, content_type="text/csv")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["latest_version"]["case_count"] == 5 and body["latest_version"]["message"] == "from a file"
    assert body["cases"][-1]["must_contain"] == ["hello"] and body["cases"][-1]["source"] == "import"
    before = golden_snapshot()
    refused = client.post(
        url, data='{"reference": "a"}\n{"regex": "("}\n', content_type="application/x-ndjson"
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["details"] == {"line": 2, "field": "regex"}
    assert golden_snapshot() == before
    unknown = client.post(f"{url}?colour=red", data=csv_body, content_type="text/csv")
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "unknown_fields"
    token = make_token(gs.world.eng, gs.world.support, Scope.EVALUATIONS_READ)
    before = golden_snapshot()  # the token's creation is audited
    scoped = api_as(token=token).post(url, data=csv_body, content_type="text/csv")
    assert scoped.status_code == 403 and golden_snapshot() == before


BAD_INPUT = [
    ("post", "/api/v1/golden-sets/", {"team": "support", "name": "Bad Name"}, 422, "invalid_name"),
    ("post", "/api/v1/golden-sets/", {"team": "support", "name": "support-set"}, 409, "golden_set_exists"),
    ("post", "/api/v1/golden-sets/", {"team": "nowhere", "name": "x"}, 404, "team_not_found"),
    (
        "post",
        "/api/v1/golden-sets/",
        {"team": "support", "name": "x", "prompt": "nope"},
        404,
        "prompt_not_found",
    ),
    (
        "post",
        "/api/v1/golden-sets/",
        {"team": "support", "name": "x", "colour": "red"},
        400,
        "unknown_fields",
    ),
    (
        "post",
        "/api/v1/golden-sets/",
        {"team": "support", "name": "x", "cases": [{"reference": "a", "colour": "red"}]},
        400,
        "unknown_fields",
    ),
    (
        "post",
        "/api/v1/golden-sets/",
        {"team": "support", "name": "x", "cases": [{"regex": "("}]},
        422,
        "invalid_case",
    ),
    ("post", "/api/v1/golden-sets/", "{not json", 400, "malformed_request"),
    ("post", "{own}/versions/", {}, 400, "invalid"),
    ("post", "{own}/versions/", {"content": '{"reference": "x"}'}, 400, "invalid"),
    ("post", "{own}/versions/", {"cases": NEW_CASES, "content": "x", "format": "csv"}, 400, "invalid"),
    ("post", "{own}/versions/", {"cases": CASES}, 409, "golden_set_unchanged"),
    ("post", "{own}/versions/", {"cases": NEW_CASES, "base_version": 7}, 409, "golden_set_changed"),
    (
        "post",
        "{own}/versions/",
        {"content": 'reference,exact\n"a",true\n"",true\n', "format": "csv"},
        422,
        "invalid_case",
    ),
    ("get", "{own}/export?format=xml", None, 400, "invalid"),
    ("get", "{own}/export?format=csv&version=9", None, 404, "not_found"),
    ("get", "/api/v1/golden-sets/999999/", None, 404, "not_found"),
    ("get", "/api/v1/golden-sets/?colour=red", None, 400, "unknown_fields"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(method, url, body, status, code, gs, api_as):
    client = api_as(gs.world.eng)
    url = url.replace("{own}", f"/api/v1/golden-sets/{gs.sets['own'].pk}")
    before = golden_snapshot()
    if body is None:
        response = getattr(client, method)(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, data=body, content_type="application/json")
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert golden_snapshot() == before


def test_an_import_error_names_the_line_and_field(gs, api_as):
    content = '{"reference": "a"}\n{"reference": "b", "max_tokens": -3}\n'
    response = api_as(gs.world.eng).post(
        f"/api/v1/golden-sets/{gs.sets['own'].pk}/versions/",
        {"content": content, "format": "jsonl"},
        format="json",
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["message"].startswith("line 2, field max_tokens:")
    assert error["details"] == {"line": 2, "field": "max_tokens"}


def test_the_schema_documents_the_golden_set_endpoints(gs, api_as):
    schema = api_as(gs.world.eng).get("/api/schema/?format=json").json()
    operations = {
        op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op
    }
    assert {e.name for e in ENDPOINTS} <= operations
