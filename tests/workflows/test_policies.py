"""Approval policies set by a team's governance: the evaluation gate and its thresholds, checked by the gate's
own validation (422 naming the bad key), audited with before and after, refused to every other role."""

import pytest

from apps.accounts.roles import Role
from apps.audit.models import AuditEvent
from apps.common.exceptions import PermissionDenied, Unprocessable
from apps.workflows.models import ApprovalPolicy, SubjectKind
from apps.workflows.services import approval_policy_change, approval_policy_for

THRESHOLDS = {"pass_rate": {"min": 0.9}, "judge_mean": {"min": 4}, "max_regression": 0.05}
# As stored: normalised by the gate's validation (a bare δ applies to pass rate and judge mean).
STORED = {
    "pass_rate": {"min": 0.9},
    "judge_mean": {"min": 4.0},
    "max_regression": {"pass_rate": 0.05, "judge_mean": 0.05},
}


def change(world, actor, **overrides):
    args = {
        "actor": actor,
        "team": world.support,
        "subject_kind": SubjectKind.PROMPT_VERSION,
        "approvals_required": 1,
        "approver_role": Role.GOVERNANCE,
        "requires_evaluation": True,
        "evaluation_thresholds": THRESHOLDS,
    } | overrides
    return approval_policy_change(**args)


def test_governance_requires_the_gate_with_thresholds_and_it_is_audited(world):
    policy = change(world, world.gov)
    assert approval_policy_for(subject_kind="prompt_version", team=world.support) == policy
    assert policy.requires_evaluation and policy.evaluation_thresholds == STORED

    change(world, world.gov, evaluation_thresholds={"pass_rate": {"min": 0.95}})
    events = list(AuditEvent.objects.filter(action="workflows.policy_changed").order_by("sequence"))
    assert [e.actor_id for e in events] == [world.gov.pk, world.gov.pk]
    assert events[0].changes["from"] is None
    assert events[0].changes["to"]["evaluation_thresholds"] == STORED
    assert events[1].changes["from"]["evaluation_thresholds"] == STORED
    assert events[1].changes["to"]["evaluation_thresholds"] == {"pass_rate": {"min": 0.95}}
    # The other team keeps the default: no gate.
    assert not approval_policy_for(subject_kind="prompt_version", team=world.finance).requires_evaluation


@pytest.mark.parametrize("username", ["admin", "eng", "owner", "ann1", "fin_gov"])
def test_no_other_role_sets_a_policy(world, username):
    with pytest.raises(PermissionDenied) as refused:
        change(world, getattr(world, username))
    assert refused.value.code == "not_governance"
    assert not ApprovalPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="workflows.policy_changed").exists()


@pytest.mark.parametrize(
    ("thresholds", "named"),
    [
        ({"pass_rat": {"min": 0.9}}, "pass_rat"),
        ({"pass_rate": {"min": "high"}}, "pass_rate"),
        ({"max_regression": -1}, "max_regression"),
        (["pass_rate"], ""),
    ],
)
def test_invalid_thresholds_are_refused_naming_the_key(world, thresholds, named):
    with pytest.raises(Unprocessable) as refused:
        change(world, world.gov, evaluation_thresholds=thresholds)
    assert refused.value.code == "invalid_thresholds"
    assert named in refused.value.message
    assert list(refused.value.details) == ["evaluation_thresholds"]
    assert not ApprovalPolicy.objects.exists()


def test_only_evaluable_changes_can_require_the_gate(world):
    for kind in (SubjectKind.ALIAS_MOVE, SubjectKind.DEPLOYMENT):
        assert change(world, world.gov, subject_kind=kind).requires_evaluation
    with pytest.raises(Unprocessable) as refused:
        change(world, world.gov, subject_kind=SubjectKind.TUNING_REQUEST)
    assert refused.value.code == "invalid_policy"
    assert not ApprovalPolicy.objects.filter(subject_kind=SubjectKind.TUNING_REQUEST).exists()
