"""API v1 for approval policies: every role × own team / other team (a refusal changes nothing and writes no
audit event; a change is audited), tokens and their scopes, and invalid thresholds refused with 422 naming
the bad key."""

import pytest

from apps.accounts.roles import Scope
from apps.audit.models import AuditEvent
from apps.workflows.models import ApprovalPolicy
from tests.api.matrix import ROLES, expect, team_slug
from tests.factories import make_token

BODY = {
    "approvals_required": 1,
    "approver_role": "governance",
    "requires_evaluation": True,
    "evaluation_thresholds": {
        "pass_rate": {"min": 0.9},
        "latency_p95_ms": {"max": 2000},
        "max_regression": 0.05,
    },
}
# Setting: the team's governance only; members of another role 403, outsiders 404 (the team is not theirs).
PUT = {"own": expect(403, gov=200), "other": expect(404)}


def snapshot():
    return (
        list(
            ApprovalPolicy.objects.order_by("pk").values_list(
                "team_id", "subject_kind", "requires_evaluation"
            )
        ),
        AuditEvent.objects.count(),
    )


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
def test_set_matrix(world, api_as, role, team):
    client = api_as() if role == "anon" else api_as(getattr(world, role))
    before = snapshot()
    response = client.put(f"/api/v1/approval-policies/{team_slug(team)}/prompt_version/", BODY, format="json")
    assert response.status_code == PUT[team][role], response.content
    if response.status_code == 200:
        assert response.json() == {
            "team": "support",
            "subject_kind": "prompt_version",
            "source": "team",
            "approvals_required": 1,
            "approver_role": "governance",
            "requires_evaluation": True,
            "evaluation_thresholds": {
                "pass_rate": {"min": 0.9},
                "latency_p95_ms": {"max": 2000.0},
                "max_regression": {"pass_rate": 0.05, "judge_mean": 0.05},
            },
            "cost_threshold": None,
            "approvals_above_threshold": None,
        }
        assert (
            AuditEvent.objects.filter(action="workflows.policy_changed", actor_id=world.gov.pk).count() == 1
        )
    else:
        assert set(response.json()) == {"error"}
        assert snapshot() == before


@pytest.mark.parametrize("role", ROLES)
def test_list_matrix(world, api_as, role):
    ApprovalPolicy.objects.create(
        team=world.finance, subject_kind="prompt_version", requires_evaluation=True, evaluation_thresholds={}
    )
    client = api_as() if role == "anon" else api_as(getattr(world, role))
    response = client.get("/api/v1/approval-policies/")
    if role == "anon":
        assert response.status_code == 401
        return
    assert response.status_code == 200
    rows = response.json()
    # Readers of support see its policy for every kind of change; nobody here sees finance's.
    assert {row["team"] for row in rows} == ({"support"} if role != "ann1" else set())
    if rows:
        prompt = next(row for row in rows if row["subject_kind"] == "prompt_version")
        assert prompt["source"] == "default" and prompt["requires_evaluation"] is False
        assert len(rows) == 6


@pytest.mark.parametrize(
    ("body", "status", "code", "named"),
    [
        (BODY | {"evaluation_thresholds": {"pass_rat": {"min": 0.9}}}, 422, "invalid_thresholds", "pass_rat"),
        (
            BODY | {"evaluation_thresholds": {"judge_mean": {"min": "four"}}},
            422,
            "invalid_thresholds",
            "judge_mean",
        ),
        (BODY | {"evaluation_thresholds": [1, 2]}, 422, "invalid_thresholds", ""),
        (BODY | {"approvals_required": 0}, 400, "invalid", "approvals_required"),
        (BODY | {"colour": "red"}, 400, "unknown_fields", "colour"),
    ],
)
def test_bad_input_is_refused_naming_the_problem(world, api_as, body, status, code, named):
    before = snapshot()
    response = api_as(world.gov).put("/api/v1/approval-policies/support/prompt_version/", body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code or status == 400
    assert named in error["message"] + str(error["details"])
    assert snapshot() == before


def test_only_evaluable_kinds_require_the_gate(world, api_as):
    response = api_as(world.gov).put("/api/v1/approval-policies/support/tuning_request/", BODY, format="json")
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_policy"
    response = api_as(world.gov).put("/api/v1/approval-policies/support/nothing/", BODY, format="json")
    assert response.status_code == 404


def test_tokens_need_the_scope(world, api_as):
    without = make_token(
        world.gov, world.support, *[s for s in Scope.values if s not in ("approvals:write", "all")]
    )
    response = api_as(token=without).put("/api/v1/approval-policies/support/deployment/", BODY, format="json")
    assert response.status_code == 403 and response.json()["error"]["details"] == {
        "required_scope": "approvals:write"
    }
    assert not ApprovalPolicy.objects.exists()
    with_scope = make_token(world.gov, world.support, "approvals:write")
    response = api_as(token=with_scope).put(
        "/api/v1/approval-policies/support/deployment/", BODY, format="json"
    )
    assert response.status_code == 200 and response.json()["subject_kind"] == "deployment"
