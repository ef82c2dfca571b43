"""API v1 for evaluation runs: start one on a prompt version or an adapter version, the history, a run with
its per-case results.

Every endpoint × role × own team / other team (status; a refusal changes nothing and writes no audit event;
a read changes nothing and shows nothing of the other team; a start is audited), tokens and their scopes,
bad input (400/404/422 naming the problem, nothing written), and a run from start to results."""

import json
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.roles import Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.catalog.models import PromptVersion
from apps.evaluation.golden_sets import golden_set_create
from apps.evaluation.models import CaseResult, EvaluationRun, RecordedResponse
from apps.evaluation.runs import evaluation_run_execute, evaluation_run_start
from apps.registry.models import Adapter, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from tests.api.matrix import ROLES, Operation, call, expect
from tests.evaluation.runs_helpers import CANDIDATE_MESSAGES, CASES, GOOD, record
from tests.factories import make_approved, make_prompt, make_token, make_version, make_world, put_on_label


def runs_snapshot() -> dict[str, Any]:
    return {
        "runs": list(EvaluationRun.objects.order_by("pk").values_list("pk", "status", "cases_done")),
        "results": CaseResult.objects.count(),
        "recorded": RecordedResponse.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }


@dataclass
class EvalScene:
    world: Any
    candidates: dict[str, PromptVersion]  # own/other: a draft v2 of greeting / ledger
    runs: dict[str, EvaluationRun]  # own/other: a completed replay run of the candidate
    adapters: dict[str, Adapter]
    productions: dict[str, PromptVersion]  # own/other: the approved v1 on production


def _team_side(world, team, author, reviewer, name):
    prompt = make_prompt(team, author, name=name)
    production = make_approved(prompt, author, reviewer)
    put_on_label(prompt, production, "production", reviewer)
    candidate = make_version(prompt, author, messages=CANDIDATE_MESSAGES, message="candidate")
    golden_set_create(actor=author, team=team, name=f"{name}-set", prompt=prompt, cases=CASES)
    run = evaluation_run_start(actor=author, prompt_version=candidate, provider="replay")
    base = base_model_register(
        actor=author, team=team, provider=Provider.HUGGING_FACE, model_id=f"{name}/base", context_window=8192
    )
    adapter = adapter_create(actor=author, base_model=base, name=f"{name}-tone")
    adapter_version_register(actor=author, adapter=adapter, artifact_uri=f"gs://artifacts/{name}/1")
    return candidate, run, adapter, production


def build_eval_scene(world) -> EvalScene:
    own = _team_side(world, world.support, world.eng, world.gov, "greeting")
    other = _team_side(world, world.finance, world.fin_eng, world.fin_gov, "ledger")
    record(world, own[0], GOOD)
    evaluation_run_execute(run_id=own[1].pk)
    evaluation_run_execute(run_id=other[1].pk)
    return EvalScene(
        world=world,
        candidates={"own": own[0], "other": other[0]},
        runs={
            "own": EvaluationRun.objects.get(pk=own[1].pk),
            "other": EvaluationRun.objects.get(pk=other[1].pk),
        },
        adapters={"own": own[2], "other": other[2]},
        productions={"own": own[3], "other": other[3]},
    )


@pytest.fixture(scope="module")
def _module_eval_scene(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_eval_scene(make_world())
        transaction.set_rollback(True)


@pytest.fixture
def es(_module_eval_scene, db) -> EvalScene:
    for user in _module_eval_scene.world.users.values():
        user_forget_roles(user)
    return _module_eval_scene


ENDPOINTS = [
    Operation(
        "prompt_version_evaluations_list",
        "get",
        lambda s, t: f"/api/v1/prompt-versions/{s.candidates[t].pk}/evaluations/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
    Operation(
        "prompt_version_evaluations_create",
        "post",
        lambda s, t: f"/api/v1/prompt-versions/{s.candidates[t].pk}/evaluations/",
        body=lambda s, t: {"provider": "replay"},
        own=expect(202, owner=403, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_WRITE,
        token_status=202,
    ),
    Operation(
        "evaluations_retrieve",
        "get",
        lambda s, t: f"/api/v1/evaluations/{s.runs[t].pk}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
    Operation(
        "adapter_version_evaluations_list",
        "get",
        lambda s, t: f"/api/v1/adapters/{s.adapters[t].pk}/versions/1/evaluations/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_READ,
        token_status=200,
    ),
    Operation(
        "adapter_version_evaluations_create",
        "post",
        lambda s, t: f"/api/v1/adapters/{s.adapters[t].pk}/versions/1/evaluations/",
        body=lambda s, t: {"provider": "replay", "prompt_version": s.productions[t].pk},
        own=expect(202, owner=403, ann1=404),
        other=expect(404),
        scope=Scope.EVALUATIONS_WRITE,
        token_status=202,
    ),
]


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, es, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    client = api_as() if role == "anon" else api_as(getattr(es.world, role))
    before = runs_snapshot()

    response = call(client, endpoint, es, team)

    assert response.status_code == expected, response.content
    after = runs_snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        assert after == before, "a refused call changed something"
    elif not endpoint.writes:
        assert after == before, "a read changed something"
        assert "ledger" not in json.dumps(response.json()), "the other team's objects showed through"
    else:
        assert response.json()["status"] == "queued"
        assert response.json()["requested_by"] == getattr(es.world, role).username
        assert after["audit_events"] > before["audit_events"], "a start was not audited"


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, es, api_as):
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(es.world.eng, es.world.support, *others))
    before = runs_snapshot()
    response = call(client, endpoint, es)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert runs_snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user(endpoint, scope, es, api_as):
    token = make_token(es.world.eng, es.world.support, endpoint.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), endpoint, es)
    assert response.status_code == endpoint.token_status, response.content


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_stays_in_its_team(endpoint, es, api_as):
    """eng2 is an engineer in support and finance: their support token sees nothing of finance."""
    token = make_token(es.world.eng2, es.world.support, Scope.ALL)
    before = runs_snapshot()
    response = call(api_as(token=token), endpoint, es, "other")
    assert response.status_code == 404, response.content
    assert runs_snapshot() == before


BAD_INPUT = [
    ("post", "/api/v1/prompt-versions/{own}/evaluations/", {"provider": "acme"}, 422, "unknown_provider"),
    ("post", "/api/v1/prompt-versions/{own}/evaluations/", {}, 400, "invalid"),
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "colour": "red"},
        400,
        "unknown_fields",
    ),
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "golden_set": "nope"},
        404,
        "golden_set_not_found",
    ),
    # Digits that str.isdigit accepts but int() does not read, and an id past any database integer.
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "golden_set": "²"},
        404,
        "golden_set_not_found",
    ),
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "golden_set": "9" * 30},
        404,
        "golden_set_not_found",
    ),
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "golden_set": "ledger-set"},
        404,
        "golden_set_not_found",
    ),
    (
        "post",
        "/api/v1/prompt-versions/{own}/evaluations/",
        {"provider": "replay", "parameters": [1]},
        400,
        "invalid",
    ),
    ("post", "/api/v1/prompt-versions/999999/evaluations/", {"provider": "replay"}, 404, "not_found"),
    ("post", "/api/v1/prompt-versions/{own}/evaluations/", "{not json", 400, "malformed_request"),
    ("post", "/api/v1/adapters/{adapter}/versions/1/evaluations/", {"provider": "replay"}, 400, "invalid"),
    (
        "post",
        "/api/v1/adapters/{adapter}/versions/1/evaluations/",
        {"provider": "replay", "prompt_version": "{other}"},
        404,
        "not_found",
    ),
    (
        "post",
        "/api/v1/adapters/{adapter}/versions/9/evaluations/",
        {"provider": "replay", "prompt_version": "{own}"},
        404,
        "not_found",
    ),
    # An adapter run renders a frozen prompt version and sets neither model nor parameters.
    (
        "post",
        "/api/v1/adapters/{adapter}/versions/1/evaluations/",
        {"provider": "replay", "prompt_version": "{own}"},
        422,
        "prompt_version_draft",
    ),
    (
        "post",
        "/api/v1/adapters/{adapter}/versions/1/evaluations/",
        {"provider": "replay", "prompt_version": "{production}", "model": "gemini-ultra"},
        422,
        "adapter_override",
    ),
    (
        "post",
        "/api/v1/adapters/{adapter}/versions/1/evaluations/",
        {"provider": "replay", "prompt_version": "{production}", "parameters": {"temperature": 0}},
        422,
        "adapter_override",
    ),
    ("get", "/api/v1/evaluations/{run}/?only=everything", None, 400, "invalid"),
    ("get", "/api/v1/evaluations/{run}/?colour=red", None, 400, "unknown_fields"),
    ("get", "/api/v1/evaluations/999999/", None, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(method, url, body, status, code, es, api_as):
    client = api_as(es.world.eng)
    names = {
        "{own}": es.candidates["own"].pk,
        "{other}": es.candidates["other"].pk,
        "{adapter}": es.adapters["own"].pk,
        "{production}": es.productions["own"].pk,
        "{run}": es.runs["own"].pk,
    }
    for name, value in names.items():
        url = url.replace(name, str(value))
    if isinstance(body, dict):
        body = {k: (names.get(v, v) if isinstance(v, str) else v) for k, v in body.items()}
    before = runs_snapshot()
    if body is None:
        response = getattr(client, method)(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, data=body, content_type="application/json")
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert runs_snapshot() == before


def test_an_unknown_provider_names_the_field(es, api_as):
    response = api_as(es.world.eng).post(
        f"/api/v1/prompt-versions/{es.candidates['own'].pk}/evaluations/", {"provider": "acme"}, format="json"
    )
    assert response.json()["error"]["details"] == {"field": "provider"}
    assert "acme" in response.json()["error"]["message"]


def test_a_run_from_start_to_results(es, api_as):
    eng = api_as(es.world.eng)
    version = es.candidates["own"]
    started = eng.post(
        f"/api/v1/prompt-versions/{version.pk}/evaluations/",
        {"provider": "replay", "golden_set": "greeting-set"},
        format="json",
    )
    assert started.status_code == 202, started.content
    run = started.json()
    assert run["status"] == "queued" and run["replay"] is True
    assert run["subject_hash"] == version.content_hash and run["counts_for_gate"] is True
    assert run["baseline_run"] is not None and run["golden_set"] == "greeting-set"

    evaluation_run_execute(run_id=run["id"])
    detail = eng.get(f"/api/v1/evaluations/{run['id']}/").json()
    assert detail["run"]["status"] == "completed"
    assert detail["run"]["summary"]["pass_rate"] == 1.0
    assert (detail["count"], detail["pages"], detail["page"]) == (3, 1, 1)
    assert [r["case"] for r in detail["results"]] == [1, 2, 3]
    assert detail["results"][0]["output"] == "Yes, within 30 days." and detail["results"][0]["passed"]
    assert eng.get(f"/api/v1/evaluations/{run['id']}/?only=failed").json()["count"] == 0

    history = eng.get(f"/api/v1/prompt-versions/{version.pk}/evaluations/").json()["results"]
    assert [r["id"] for r in history][:2] == [run["id"], es.runs["own"].pk]


def test_a_run_on_another_model_is_shown_as_not_counting_for_the_gate(es, api_as):
    version = es.candidates["own"]
    started = api_as(es.world.eng).post(
        f"/api/v1/prompt-versions/{version.pk}/evaluations/",
        {"provider": "replay", "model": "a-better-model"},
        format="json",
    )
    assert started.status_code == 202, started.content
    run = started.json()
    assert run["model"] == "a-better-model" and run["counts_for_gate"] is False
    assert run["subject_hash"] != version.content_hash


def test_an_adapter_refusal_names_the_field(es, api_as):
    response = api_as(es.world.eng).post(
        f"/api/v1/adapters/{es.adapters['own'].pk}/versions/1/evaluations/",
        {"provider": "replay", "prompt_version": es.productions["own"].pk, "parameters": {"top_k": 1}},
        format="json",
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"] == {"field": "parameters"}


def test_the_run_list_takes_as_many_queries_for_six_runs_as_for_two(es, api_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_as(es.world.eng)
    version = es.candidates["own"]
    url = f"/api/v1/prompt-versions/{version.pk}/evaluations/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    for model in ("m1",):
        evaluation_run_start(actor=es.world.eng, prompt_version=version, provider="replay", model=model)
    assert EvaluationRun.objects.filter(prompt_version=version).count() == 2
    two = queries()
    for model in ("m2", "m3", "m4", "m5"):
        evaluation_run_start(actor=es.world.eng, prompt_version=version, provider="replay", model=model)
    assert EvaluationRun.objects.filter(prompt_version=version).count() == 6
    assert queries() == two


def test_the_production_baselines_cases_fail_without_recordings(es, api_as):
    """The baseline run of production (no recordings of v1) completes with every case an error, visible per case."""
    eng = api_as(es.world.eng)
    run = eng.post(
        f"/api/v1/prompt-versions/{es.candidates['own'].pk}/evaluations/",
        {"provider": "replay"},
        format="json",
    ).json()
    evaluation_run_execute(run_id=run["baseline_run"])
    errors = eng.get(f"/api/v1/evaluations/{run['baseline_run']}/?only=errors").json()
    assert errors["count"] == 3
    assert all("no recorded response" in r["error"] for r in errors["results"])
