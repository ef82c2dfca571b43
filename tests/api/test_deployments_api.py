"""API v1 for endpoints and deployment requests.

Every endpoint × role × own team / other team (status; a refusal changes nothing, neither rows nor audit
events nor the serving backend's state; a read shows nothing of the other team; a write is audited),
tokens and their scopes, bad input (400/404/409/422 naming the problem, nothing written), and a
deployment from request to rollback through the API on the local serving backend."""

import json
import shutil
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.roles import Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.cloud.jobs import get_serving_backend
from apps.cloud.jobs.local_serving import LocalServingBackend
from apps.registry.models import AdapterVersion, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.tuning.deployments import (
    deployment_action_apply,
    deployment_create,
    deployment_deploy,
    deployment_promote,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.models import Deployment, Endpoint
from apps.workflows.models import ApprovalRequest
from apps.workflows.services import approval_decision_record
from tests.api.matrix import READERS, ROLES, Operation, call, expect
from tests.factories import make_token, make_world
from workers.deployments import apply_action, deploy


def snapshot() -> dict[str, Any]:
    return {
        "endpoints": list(
            Endpoint.objects.order_by("pk").values_list("pk", "name", "resource_name", "traffic_split")
        ),
        "deployments": list(
            Deployment.objects.order_by("pk").values_list("pk", "status", "deployed_model_id", "closed_at")
        ),
        "requests": list(ApprovalRequest.objects.order_by("pk").values_list("pk", "status")),
        "audit_events": AuditEvent.objects.count(),
    }


def served(root) -> dict[str, Any]:
    """What the local serving backend holds, endpoint by endpoint."""
    return {
        path.name: json.loads(path.read_text())["traffic_split"]
        for path in sorted((root / "endpoints").glob("*.json"))
    }


@dataclass
class Side:
    version: AdapterVersion  # v1
    newer: AdapterVersion  # v2
    bot: Endpoint  # promoted v1 at 90 %, live canary v2 at 10 %
    batch: Endpoint  # empty, with a draft replace of v1
    promoted: Deployment
    canary: Deployment
    draft: Deployment


@dataclass
class DeployScene:
    world: Any
    sides: dict[str, Side]  # own (support) / other (finance)
    serving_root: Any


def _side(world, team, eng, gov, backend, prefix) -> Side:
    model = base_model_register(
        actor=eng, team=team, provider=Provider.HUGGING_FACE, model_id=f"{prefix}/base", context_window=8192
    )
    adapter = adapter_create(actor=eng, base_model=model, name=f"{prefix}-tone")
    v1 = adapter_version_register(actor=eng, adapter=adapter, artifact_uri=f"gs://artifacts/{prefix}/1")
    v2 = adapter_version_register(actor=eng, adapter=adapter, artifact_uri=f"gs://artifacts/{prefix}/2")
    bot = endpoint_create(actor=eng, team=team, name=f"{prefix}-bot")
    batch = endpoint_create(actor=eng, team=team, name=f"{prefix}-batch")

    def live(version, strategy, percent):
        draft = deployment_create(
            actor=eng,
            endpoint=bot,
            adapter_version=version,
            strategy=strategy,
            traffic_percent=percent,
            justification="scene",
        )
        approval = deployment_submit(actor=eng, deployment=draft)
        approval_decision_record(request_id=approval.pk, reviewer=gov, decision="approve", comment="")
        return deployment_deploy(deployment_id=draft.pk, backend=backend)

    first = live(v1, "replace", None)
    deployment_promote(actor=eng, deployment=first)
    promoted = deployment_action_apply(deployment_id=first.pk, backend=backend)
    canary = live(v2, "canary", 10)
    draft = deployment_create(
        actor=eng, endpoint=batch, adapter_version=v1, strategy="replace", justification="scene"
    )
    bot.refresh_from_db()
    return Side(v1, v2, bot, batch, promoted, canary, draft)


@pytest.fixture(scope="module")
def _module_scene(django_db_setup, django_db_blocker, tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    backend = LocalServingBackend(root)
    with django_db_blocker.unblock(), transaction.atomic():
        world = make_world()
        sides = {
            "own": _side(world, world.support, world.eng, world.gov, backend, "support"),
            "other": _side(world, world.finance, world.fin_eng, world.fin_gov, backend, "ledger"),
        }
        yield DeployScene(world=world, sides=sides, serving_root=root)
        transaction.set_rollback(True)


@pytest.fixture
def ds(_module_scene, db, settings, tmp_path) -> DeployScene:
    """The scene's rows (rolled back after each test) and a fresh copy of its serving state."""
    for user in _module_scene.world.users.values():
        user_forget_roles(user)
    root = tmp_path / "serving"
    shutil.copytree(_module_scene.serving_root, root)
    settings.JOB_BACKEND = "local"
    settings.LOCAL_ENDPOINTS_DIR = str(root)
    get_serving_backend.cache_clear()
    yield DeployScene(world=_module_scene.world, sides=_module_scene.sides, serving_root=root)
    get_serving_backend.cache_clear()


def _team(team: str) -> str:
    return "support" if team == "own" else "finance"


OPERATIONS = [
    Operation(
        "endpoints_list",
        "get",
        lambda s, t: f"/api/v1/endpoints/?team={_team(t)}",
        own=expect(200),
        other=expect(200),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "endpoints_create",
        "post",
        lambda s, t: "/api/v1/endpoints/",
        body=lambda s, t: {"team": _team(t), "name": "fresh"},
        own=expect(403, admin=201, eng=201),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "endpoints_retrieve",
        "get",
        lambda s, t: f"/api/v1/endpoints/{s.sides[t].bot.pk}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "deployments_list",
        "get",
        lambda s, t: f"/api/v1/deployments/?team={_team(t)}",
        own=expect(200),
        other=expect(200),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "deployments_create",
        "post",
        lambda s, t: "/api/v1/deployments/",
        body=lambda s, t: {
            "endpoint": s.sides[t].batch.pk,
            "adapter_version": s.sides[t].newer.pk,
            "strategy": "replace",
            "justification": "the newer one",
        },
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "deployments_retrieve",
        "get",
        lambda s, t: f"/api/v1/deployments/{s.sides[t].canary.pk}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "deployments_submit",
        "post",
        lambda s, t: f"/api/v1/deployments/{s.sides[t].draft.pk}/submit/",
        own=expect(403, admin=202, eng=202, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=202,
    ),
    Operation(
        "deployments_promote",
        "post",
        lambda s, t: f"/api/v1/deployments/{s.sides[t].canary.pk}/promote/",
        own=expect(202, owner=403, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=202,
    ),
    Operation(
        "deployments_rollback",
        "post",
        lambda s, t: f"/api/v1/deployments/{s.sides[t].canary.pk}/rollback/",
        own=expect(202, owner=403, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=202,
    ),
]


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_permission_matrix(op, role, team, ds, api_as):
    expected = (op.own if team == "own" else op.other)[role]
    client = api_as() if role == "anon" else api_as(getattr(ds.world, role))
    before, held = snapshot(), served(ds.serving_root)

    response = call(client, op, ds, team)

    assert response.status_code == expected, response.content
    after = snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        assert after == before, "a refused call changed something"
        assert served(ds.serving_root) == held, "a refused call changed the endpoints"
    elif not op.writes:
        assert after == before, "a read changed something"
        text = json.dumps(response.json())
        assert "ledger" not in text, "the other team's objects showed through"
        if op.name.endswith("_list"):
            found = len(response.json()["results"])
            expected_count = {"endpoints_list": 2, "deployments_list": 3}[op.name]
            assert found == (expected_count if team == "own" and role in READERS else 0)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"


@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_a_token_without_the_scope_is_refused(op, ds, api_as):
    others = [s for s in Scope.values if s not in (op.scope, Scope.ALL)]
    client = api_as(token=make_token(ds.world.eng, ds.world.support, *others))
    before = snapshot()
    response = call(client, op, ds)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["details"] == {"required_scope": op.scope}
    assert snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda o: o.name)
def test_a_token_with_the_scope_acts_as_its_user(op, scope, ds, api_as):
    token = make_token(ds.world.eng, ds.world.support, op.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), op, ds)
    assert response.status_code == op.token_status, response.content


@pytest.mark.parametrize("op", [o for o in OPERATIONS if not o.name.endswith("_list")], ids=lambda o: o.name)
def test_a_token_stays_in_its_team(op, ds, api_as):
    """eng2 is an engineer in support and finance: their support token reaches nothing of finance."""
    token = make_token(ds.world.eng2, ds.world.support, Scope.ALL)
    before = snapshot()
    response = call(api_as(token=token), op, ds, "other")
    assert response.status_code == 404, response.content
    assert snapshot() == before


def test_an_endpoint_is_created_in_the_tokens_team_by_default(ds, api_as):
    token = make_token(ds.world.eng2, ds.world.support, Scope.MODELS_WRITE)
    response = api_as(token=token).post("/api/v1/endpoints/", {"name": "edge"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() | {"id": 0, "created_at": ""} == {
        "id": 0,
        "team": "support",
        "name": "edge",
        "backend": "local",
        "resource_name": "",
        "traffic_split": {},
        "created_by": "eng2",
        "created_at": "",
    }


BAD_INPUT = [
    ("post", "/api/v1/endpoints/", {"team": "support", "name": "Bad Name"}, 422, "invalid_name"),
    ("post", "/api/v1/endpoints/", {"team": "support", "name": "support-bot"}, 409, "endpoint_exists"),
    ("post", "/api/v1/endpoints/", {"team": "nowhere", "name": "x"}, 404, "team_not_found"),
    ("post", "/api/v1/endpoints/", {"team": "support", "name": "x", "region": "eu"}, 400, "unknown_fields"),
    ("post", "/api/v1/endpoints/", "{not json", 400, "malformed_request"),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "adapter_version": "{v1}", "strategy": "canary", "traffic_percent": 60},
        422,
        "invalid_traffic_percent",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "strategy": "replace", "justification": "x"},
        422,
        "invalid_model",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "adapter_version": 999999, "strategy": "replace", "justification": "x"},
        404,
        "not_found",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "adapter_version": "{v1}", "strategy": "canary", "traffic_percent": 10},
        422,
        "nothing_to_share",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{bot}", "adapter_version": "{v1}", "strategy": "replace", "justification": "x"},
        409,
        "endpoint_busy",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "adapter_version": "{v1}", "strategy": "blue_green", "justification": "x"},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/deployments/",
        {"endpoint": "{batch}", "adapter_version": "{v1}", "strategy": "replace", "justification": " "},
        400,
        "invalid",
    ),
    ("get", "/api/v1/deployments/?status=sleeping", None, 400, "invalid"),
    ("get", "/api/v1/endpoints/?colour=red", None, 400, "unknown_fields"),
    ("post", "/api/v1/deployments/{draft}/promote/", None, 409, "invalid_transition"),
    ("post", "/api/v1/deployments/{promoted}/submit/", None, 409, "invalid_transition"),
    ("post", "/api/v1/deployments/{promoted}/rollback/", None, 409, "endpoint_busy"),
    ("post", "/api/v1/deployments/999999/rollback/", None, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(method, url, body, status, code, ds, api_as):
    own = ds.sides["own"]
    ids = {
        "{batch}": own.batch.pk,
        "{bot}": own.bot.pk,
        "{v1}": own.version.pk,
        "{draft}": own.draft.pk,
        "{promoted}": own.promoted.pk,
    }
    for key, value in ids.items():
        url = url.replace(key, str(value))
    if isinstance(body, dict):
        body = {k: ids.get(v, v) for k, v in body.items()}
        if "/deployments/" in url:
            body.setdefault("justification", "x")
    client = api_as(ds.world.eng)
    before, held = snapshot(), served(ds.serving_root)
    if body is None:
        response = getattr(client, method)(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, data=body, content_type="application/json")
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert snapshot() == before and served(ds.serving_root) == held


def test_a_deployment_from_request_to_rollback_through_the_api(
    ds, api_as, enqueued, django_capture_on_commit_callbacks
):
    own = ds.sides["own"]
    eng, gov = api_as(ds.world.eng), api_as(ds.world.gov)
    created = eng.post(
        "/api/v1/deployments/",
        {
            "endpoint": own.batch.pk,
            "adapter_version": own.newer.pk,
            "strategy": "replace",
            "machine_type": "g2-standard-12",
            "accelerator_type": "NVIDIA_L4",
            "accelerator_count": 1,
            "justification": "v2 answers better",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["status"], body["traffic_percent"], body["model"]) == (
        "draft",
        100,
        "support/support-tone v2",
    )
    assert body["adapter_version"]["number"] == 2 and body["approval_request"] is None

    # The earlier draft on this endpoint does not block it; a submission does.
    submitted = eng.post(f"/api/v1/deployments/{body['id']}/submit/")
    assert submitted.status_code == 202, submitted.content
    request_id = submitted.json()["approval_request"]["id"]
    assert submitted.json()["deployment"]["status"] == "pending_approval"
    assert (
        eng.post(
            f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json"
        ).status_code
        == 403
    )
    with django_capture_on_commit_callbacks(execute=True):
        decided = gov.post(
            f"/api/v1/approvals/{request_id}/decisions/", {"decision": "approve"}, format="json"
        )
    assert decided.status_code == 201, decided.content
    assert ("workers.deployments.deploy", (body["id"],)) in enqueued

    assert deploy(body["id"]) == "live"  # the task, as the worker runs it
    live = eng.get(f"/api/v1/deployments/{body['id']}/").json()
    assert live["status"] == "live" and live["approved_by"] == ["gov"] and live["deployed_model_id"]
    endpoint = eng.get(f"/api/v1/endpoints/{own.batch.pk}/").json()
    assert endpoint["traffic_split"] == {live["deployed_model_id"]: 100}
    assert endpoint["resource_name"].startswith("endpoints/")
    assert [(d["id"], d["status"]) for d in endpoint["deployments"]] == [
        (body["id"], "live"),
        (own.draft.pk, "draft"),
    ]

    with django_capture_on_commit_callbacks(execute=True):
        rolled = gov.post(f"/api/v1/deployments/{body['id']}/rollback/")
    assert rolled.status_code == 202, rolled.content
    assert (rolled.json()["status"], rolled.json()["action"]) == ("live", "rollback")
    assert rolled.json()["action_requested_by"] == "gov"
    assert ("workers.deployments.apply_action", (body["id"],)) in enqueued
    pending = gov.post(f"/api/v1/deployments/{body['id']}/promote/")
    assert pending.status_code == 409 and pending.json()["error"]["code"] == "action_pending"

    assert apply_action(body["id"]) == "rolled_back"  # the task, as the worker runs it
    done = eng.get(f"/api/v1/deployments/{body['id']}/").json()
    assert (done["status"], done["action"]) == ("rolled_back", "")
    assert eng.get(f"/api/v1/endpoints/{own.batch.pk}/").json()["traffic_split"] == {}
    again = gov.post(f"/api/v1/deployments/{body['id']}/rollback/")
    assert again.status_code == 409 and again.json()["error"]["code"] == "invalid_transition"


def test_promote_through_the_api_gives_the_canary_everything(ds, api_as):
    own = ds.sides["own"]
    client = api_as(ds.world.eng)
    before = client.get(f"/api/v1/endpoints/{own.bot.pk}/").json()["traffic_split"]
    assert before == {own.promoted.deployed_model_id: 90, own.canary.deployed_model_id: 10}
    response = client.post(f"/api/v1/deployments/{own.canary.pk}/promote/")
    assert response.status_code == 202 and response.json()["action"] == "promote"
    assert apply_action(own.canary.pk) == "promoted"
    endpoint = client.get(f"/api/v1/endpoints/{own.bot.pk}/").json()
    assert endpoint["traffic_split"] == {own.canary.deployed_model_id: 100}
    statuses = {d["id"]: d["status"] for d in endpoint["deployments"]}
    assert statuses == {own.canary.pk: "promoted", own.promoted.pk: "replaced"}


def test_the_schema_documents_the_deployment_operations(api_as, ds):
    schema = api_as(ds.world.eng).get("/api/schema/?format=json").json()
    operations = {
        op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op
    }
    assert {o.name for o in OPERATIONS} <= operations


def test_the_list_reads_approvals_in_two_queries_whatever_the_number_of_deployments(world, api_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.tuning.deployments import deployment_submit

    model = base_model_register(
        actor=world.eng, team=world.support, provider=Provider.HUGGING_FACE, model_id="m", context_window=8
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="tone")
    version = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://a/1")
    client = api_as(world.owner)

    def approved(n: int) -> None:
        endpoint = endpoint_create(actor=world.eng, team=world.support, name=f"e{n}")
        draft = deployment_create(
            actor=world.eng, endpoint=endpoint, strategy="replace", adapter_version=version, justification="j"
        )
        approval = deployment_submit(actor=world.eng, deployment=draft)
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")

    def queries_for_list() -> tuple[int, list]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/api/v1/deployments/")
        assert response.status_code == 200
        return len(captured), [r["approved_by"] for r in response.json()["results"]]

    approved(0)
    one, before = queries_for_list()
    assert before[0] == ["gov"]  # the newest: the one just approved
    for n in range(1, 6):
        approved(n)
    many, after = queries_for_list()
    assert many == one
    assert len(after) == len(before) + 5 and after[:6] == [["gov"]] * 6
