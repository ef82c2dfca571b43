"""API v1 for tuning requests: every endpoint × role × own team / other team, token scopes, bad input
(400/422 naming the problem, nothing written), and a request from draft to approval through the API."""

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.roles import Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.registry.models import Adapter, Provider
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.models import TuningRequest
from apps.tuning.services import tuning_request_create
from apps.workflows.models import ApprovalRequest
from tests.api.matrix import READERS, ROLES, Operation, call, expect
from tests.factories import make_token, make_world


def snapshot() -> dict[str, Any]:
    return {
        "requests": list(
            TuningRequest.objects.order_by("pk").values_list("pk", "status", "cancel_requested_at")
        ),
        "approvals": list(ApprovalRequest.objects.order_by("pk").values_list("pk", "status")),
        "audit_events": AuditEvent.objects.count(),
    }


@dataclass
class Scene:
    world: Any
    adapters: dict[str, Adapter]
    drafts: dict[str, TuningRequest]


def _draft(user, adapter):
    return tuning_request_create(
        actor=user,
        adapter=adapter,
        train_dataset_uri=f"gs://data/{adapter.name}/train.jsonl",
        estimated_hours=1,
        justification="needed",
    )


@pytest.fixture(scope="module")
def _module_scene(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        world = make_world()
        adapters, drafts = {}, {}
        for team_key, team, user in (
            ("own", world.support, world.eng),
            ("other", world.finance, world.fin_eng),
        ):
            model = base_model_register(
                actor=user,
                team=team,
                provider=Provider.HUGGING_FACE,
                model_id=f"{team.slug}/base",
                context_window=4096,
            )
            adapters[team_key] = adapter_create(actor=user, base_model=model, name=f"{team.slug}-tone")
            drafts[team_key] = _draft(user, adapters[team_key])
        yield Scene(world=world, adapters=adapters, drafts=drafts)
        transaction.set_rollback(True)


@pytest.fixture
def scene(_module_scene, db) -> Scene:
    for user in _module_scene.world.users.values():
        user_forget_roles(user)
    return _module_scene


ENDPOINTS = [
    Operation(
        "tuning_requests_list",
        "get",
        lambda s, t: f"/api/v1/tuning-requests/?team={'support' if t == 'own' else 'finance'}",
        own=expect(200),
        other=expect(200),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "tuning_requests_create",
        "post",
        lambda s, t: "/api/v1/tuning-requests/",
        body=lambda s, t: {
            "adapter": s.adapters[t].pk,
            "train_dataset_uri": "gs://data/train.jsonl",
            "estimated_hours": "2.5",
            "justification": "better tone",
            "hyperparameters": {"rank": 4},
        },
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "tuning_requests_retrieve",
        "get",
        lambda s, t: f"/api/v1/tuning-requests/{s.drafts[t].pk}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_READ,
        token_status=200,
    ),
    Operation(
        "tuning_requests_submit",
        "post",
        lambda s, t: f"/api/v1/tuning-requests/{s.drafts[t].pk}/submit/",
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=201,
    ),
    Operation(
        "tuning_requests_cancel",
        "post",
        lambda s, t: f"/api/v1/tuning-requests/{s.drafts[t].pk}/cancel/",
        own=expect(403, admin=200, eng=200, ann1=404),
        other=expect(404),
        scope=Scope.MODELS_WRITE,
        token_status=200,
    ),
]


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, scene, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    client = api_as() if role == "anon" else api_as(getattr(scene.world, role))
    before = snapshot()
    response = call(client, endpoint, scene, team)
    assert response.status_code == expected, response.content
    after = snapshot()
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert after == before, "a refused call changed something"
    elif endpoint.method == "get":
        assert after == before
        assert "finance" not in response.content.decode()
        if endpoint.name.endswith("_list"):
            assert len(response.json()["results"]) == (1 if team == "own" and role in READERS else 0)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, scene, api_as):
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(scene.world.eng, scene.world.support, *others))
    before = snapshot()
    response = call(client, endpoint, scene)
    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user_in_its_team_only(endpoint, scene, api_as):
    token = make_token(scene.world.eng2, scene.world.support, endpoint.scope)
    assert call(api_as(token=token), endpoint, scene).status_code == endpoint.token_status
    if not endpoint.name.endswith("_list"):
        assert call(api_as(token=token), endpoint, scene, "other").status_code == 404


BAD_INPUT = [
    ({"adapter": "{own}", "train_dataset_uri": "gs://x", "estimated_hours": "1"}, 400, "invalid"),
    (
        {"adapter": "{own}", "train_dataset_uri": "gs://x", "estimated_hours": "0", "justification": "j"},
        400,
        "invalid",
    ),
    (
        {"adapter": "{own}", "train_dataset_uri": "ftp://x", "estimated_hours": "1", "justification": "j"},
        422,
        "invalid_train_dataset_uri",
    ),
    (
        {
            "adapter": "{own}",
            "train_dataset_uri": "gs://x",
            "estimated_hours": "1",
            "justification": "j",
            "hyperparameters": {"rank": -1},
        },
        422,
        "invalid_hyperparameters",
    ),
    (
        {
            "adapter": "{own}",
            "train_dataset_uri": "gs://x",
            "estimated_hours": "1",
            "justification": "j",
            "accelerator_type": "NVIDIA_L4",
        },
        422,
        "invalid_accelerator",
    ),
    (
        {"adapter": 999999, "train_dataset_uri": "gs://x", "estimated_hours": "1", "justification": "j"},
        404,
        "not_found",
    ),
    ({"adapter": "{own}", "colour": "red"}, 400, "unknown_fields"),
]


@pytest.mark.parametrize(("body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(body, status, code, scene, api_as):
    body = {k: (scene.adapters["own"].pk if v == "{own}" else v) for k, v in body.items()}
    before = snapshot()
    response = api_as(scene.world.eng).post("/api/v1/tuning-requests/", body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert snapshot() == before


def test_from_draft_to_approval_through_the_api(scene, api_as, enqueued, django_capture_on_commit_callbacks):
    eng = api_as(scene.world.eng)
    created = eng.post(
        "/api/v1/tuning-requests/",
        {
            "adapter": scene.adapters["own"].pk,
            "train_dataset_uri": "gs://data/support/train.jsonl",
            "estimated_hours": "1.5",
            "justification": "better tone",
        },
        format="json",
    ).json()
    assert created["status"] == "draft" and created["hyperparameters"]["rank"] == 8
    submitted = eng.post(f"/api/v1/tuning-requests/{created['id']}/submit/")
    assert submitted.status_code == 201
    approval = submitted.json()["id"]
    assert (
        eng.post(f"/api/v1/tuning-requests/{created['id']}/submit/").json()["error"]["code"]
        == "invalid_transition"
    )
    with django_capture_on_commit_callbacks(execute=True):
        decided = api_as(scene.world.gov).post(
            f"/api/v1/approvals/{approval}/decisions/", {"decision": "approve"}, format="json"
        )
    assert decided.status_code == 201
    detail = eng.get(f"/api/v1/tuning-requests/{created['id']}/").json()
    assert detail["status"] == "approved" and detail["approval_request"] == approval
    assert ("workers.tuning.dispatch_job", (created["id"],)) in enqueued


def test_the_list_reads_approval_requests_in_one_query_whatever_the_number_of_requests(world, api_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.tuning.services import tuning_request_submit

    model = base_model_register(
        actor=world.eng, team=world.support, provider=Provider.HUGGING_FACE, model_id="m", context_window=8
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="tone")
    client = api_as(world.gov)

    def queries_for_list() -> tuple[int, list]:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/api/v1/tuning-requests/")
        assert response.status_code == 200
        return len(captured), [r["approval_request"] for r in response.json()["results"]]

    tuning_request_submit(actor=world.eng, request=_draft(world.eng, adapter))
    one, before = queries_for_list()
    assert before[0] is not None  # the newest: the one just submitted
    for _ in range(5):
        tuning_request_submit(actor=world.eng, request=_draft(world.eng, adapter))
    many, after = queries_for_list()
    assert many == one
    assert len(after) == len(before) + 5 and None not in after[:6]
    assert len({a for a in after if a is not None}) == len([a for a in after if a is not None])
