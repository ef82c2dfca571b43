"""The evaluation gate in the approval engine: approval is refused until a run on exactly the subject's content
has passed the policy's thresholds (and is no worse than production by more than δ)."""

from __future__ import annotations

import hashlib

import pytest
from django.utils import timezone

from apps.catalog.models import VersionStatus
from apps.common.exceptions import Conflict
from apps.evaluation.gates import adapter_subject_hash, gate_verdict, prompt_subject_hash, run_outcome_record
from apps.evaluation.metrics import aggregate
from apps.evaluation.models import (
    CaseResult,
    EvaluationRun,
    GoldenCase,
    GoldenSet,
    GoldenSetVersion,
    RunStatus,
)
from apps.registry.models import AliasMove, FoundationModel, MoveStatus, Provider
from apps.registry.services import adapter_create, adapter_version_register, alias_move_request
from apps.workflows.models import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    RequestStatus,
    SubjectKind,
)
from apps.workflows.services import approval_decision_record
from tests.factories import make_approved, make_prompt, make_submitted, make_version, put_on_label


def _says(text):
    return [{"role": "user", "template": text}]


def _require_gate(team, kind=SubjectKind.PROMPT_VERSION, **thresholds):
    ApprovalPolicy.objects.update_or_create(
        subject_kind=kind,
        team=team,
        defaults={"requires_evaluation": True, "evaluation_thresholds": thresholds},
    )


def _golden(team, author, prompt=None, name="greeting-golden", cases=4) -> GoldenSetVersion:
    golden_set, _ = GoldenSet.objects.get_or_create(
        team=team, name=name, defaults={"prompt": prompt, "created_by": author}
    )
    number = golden_set.versions.count() + 1
    version = GoldenSetVersion.objects.create(
        golden_set=golden_set,
        number=number,
        content_hash=hashlib.sha256(f"{name}:{number}".encode()).hexdigest(),
        case_count=cases,
        created_by=author,
    )
    GoldenCase.objects.bulk_create(
        GoldenCase(version=version, position=i, name=f"case {i}", must_contain=["hello"])
        for i in range(cases)
    )
    return version


def _run(golden_version, prompt_version, author, passed, *, adapter_version=None, baseline=None, status=None):
    """A completed run whose cases passed as `passed` says (one bool per case)."""
    cases = list(golden_version.cases.order_by("position"))
    rows = [{"passed": ok, "metrics": {"contains": ok}, "latency_ms": 100.0} for ok in passed]
    run = EvaluationRun.objects.create(
        team=prompt_version.prompt.team,
        golden_set_version=golden_version,
        prompt_version=prompt_version,
        adapter_version=adapter_version,
        subject_hash=adapter_subject_hash(adapter_version)
        if adapter_version
        else prompt_subject_hash(prompt_version),
        provider="replay",
        model=prompt_version.model,
        status=status or RunStatus.COMPLETED,
        summary=aggregate(rows),
        baseline_run=baseline,
        cases_total=len(cases),
        cases_done=len(passed),
        requested_by=author,
        finished_at=timezone.now(),
    )
    CaseResult.objects.bulk_create(
        CaseResult(
            run=run,
            case=case,
            request_key="k" * 64,
            output="hello" if ok else "bye",
            passed=ok,
            failures=[] if ok else ['missing "hello"'],
            metrics={"contains": ok},
        )
        for case, ok in zip(cases, passed, strict=False)
    )
    return run


def _request(subject, kind=SubjectKind.PROMPT_VERSION):
    return ApprovalRequest.objects.get(object_id=subject.pk, subject_kind=kind, status=RequestStatus.OPEN)


def _approve(subject, reviewer, kind=SubjectKind.PROMPT_VERSION):
    return approval_decision_record(
        request_id=_request(subject, kind).pk, reviewer=reviewer, decision="approve"
    )


def _refused(subject, reviewer, kind=SubjectKind.PROMPT_VERSION) -> Conflict:
    before = ApprovalDecision.objects.count()
    with pytest.raises(Conflict) as refused:
        _approve(subject, reviewer, kind)
    assert refused.value.code == "evaluation_gate_failed"
    assert ApprovalDecision.objects.count() == before  # nothing half-written
    return refused.value


def test_without_the_gate_in_the_policy_a_version_is_approved_with_no_run(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    _approve(version, world.gov)
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED


def test_no_run_refuses_approval_and_says_why(world):
    _require_gate(world.support, pass_rate={"min": 0.9})
    prompt = make_prompt(world.support, world.eng)
    _golden(world.support, world.eng, prompt)
    version = make_submitted(prompt, world.eng)
    error = _refused(version, world.gov)
    assert "No completed evaluation run on golden set greeting-golden" in error.message
    assert error.details["runs"][0]["run"] is None
    version.refresh_from_db()
    assert version.status == VersionStatus.IN_REVIEW


def test_no_golden_set_at_all_refuses_too(world):
    _require_gate(world.support)
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    assert "No evaluation run on this content" in _refused(version, world.gov).message


def test_a_failed_run_refuses_with_the_failing_check_then_a_passing_run_approves(world):
    _require_gate(world.support, pass_rate={"min": 0.9})
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt, cases=4)
    version = make_submitted(prompt, world.eng)
    failed = _run(golden, version, world.eng, [True, True, True, False])
    error = _refused(version, world.gov)
    assert "pass rate 0.75 is below the required minimum of 0.9" in error.message
    [run] = error.details["runs"]
    assert run["run"] == failed.pk
    assert run["checks"][0]["actual"] == 0.75
    assert run["checks"][0]["passed"] is False
    # reject and request changes are never blocked by the gate; approve is, until a newer run passes
    _run(golden, version, world.eng, [True, True, True, True])
    _approve(version, world.gov)
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED


def test_the_gate_does_not_block_rejecting(world):
    _require_gate(world.support)
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    approval_decision_record(request_id=_request(version).pk, reviewer=world.gov, decision="reject")
    version.refresh_from_db()
    assert version.status == VersionStatus.REJECTED


def test_a_run_on_other_content_does_not_count(world):
    _require_gate(world.support)
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    v1 = make_version(prompt, world.eng, messages=_says("Hello {{ name }}"))
    _run(golden, v1, world.eng, [True] * 4)
    v2 = make_submitted(prompt, world.eng, messages=_says("Goodbye {{ name }}"))
    assert v2.content_hash != v1.content_hash
    assert "No completed evaluation run on golden set" in _refused(v2, world.gov).message


def test_a_run_on_the_same_content_counts_whichever_version_it_ran_on(world):
    _require_gate(world.support)
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    draft = make_version(prompt, world.eng, messages=_says("Hello {{ name }}"))
    _run(golden, draft, world.eng, [True] * 4)
    same = make_submitted(prompt, world.eng, messages=_says("Hello {{ name }}"))
    assert same.content_hash == draft.content_hash
    _approve(same, world.gov)


def test_a_run_on_an_older_version_of_the_golden_set_must_be_repeated(world):
    _require_gate(world.support)
    prompt = make_prompt(world.support, world.eng)
    old = _golden(world.support, world.eng, prompt)
    version = make_submitted(prompt, world.eng)
    _run(old, version, world.eng, [True] * 4)
    new = _golden(world.support, world.eng, prompt)  # a case added: version 2
    assert "has changed since run" in _refused(version, world.gov).message
    _run(new, version, world.eng, [True] * 4)
    _approve(version, world.gov)


def test_every_golden_set_of_the_prompt_must_have_passed(world):
    _require_gate(world.support)
    prompt = make_prompt(world.support, world.eng)
    first = _golden(world.support, world.eng, prompt, name="tone")
    _golden(world.support, world.eng, prompt, name="safety")
    version = make_submitted(prompt, world.eng)
    _run(first, version, world.eng, [True] * 4)
    assert "No completed evaluation run on golden set safety" in _refused(version, world.gov).message


def test_a_run_that_did_not_complete_does_not_count(world):
    _require_gate(world.support)
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    version = make_submitted(prompt, world.eng)
    _run(golden, version, world.eng, [True] * 4, status=RunStatus.RUNNING)
    _refused(version, world.gov)


def test_regression_against_production_by_more_than_delta_refuses(world):
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt, cases=4)
    production = make_approved(prompt, world.eng, world.gov, messages=_says("Hi {{ name }}"))
    put_on_label(prompt, production, "production", world.gov)
    _require_gate(world.support, pass_rate={"min": 0.5}, max_regression=0.1)
    baseline = _run(golden, production, world.eng, [True] * 4)
    candidate = make_submitted(prompt, world.eng, messages=_says("Hey {{ name }}"))
    _run(golden, candidate, world.eng, [True, True, True, False], baseline=baseline)
    error = _refused(candidate, world.gov)
    assert "pass rate 0.75 is 0.25 below production's 1" in error.message
    assert "more than the allowed 0.1" in error.message
    # within δ: a newer run with the same score against a weaker baseline passes
    weaker = _run(golden, production, world.eng, [True, True, True, False])
    _run(golden, candidate, world.eng, [True, True, True, False], baseline=weaker)
    _approve(candidate, world.gov)


def test_regression_waits_for_the_production_run(world):
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    production = make_approved(prompt, world.eng, world.gov, messages=_says("Hi {{ name }}"))
    _require_gate(world.support, max_regression=0.1)
    baseline = _run(golden, production, world.eng, [True] * 4, status=RunStatus.RUNNING)
    candidate = make_submitted(prompt, world.eng, messages=_says("Hey {{ name }}"))
    _run(golden, candidate, world.eng, [True] * 4, baseline=baseline)
    assert "has not completed" in _refused(candidate, world.gov).message


def test_a_tightened_policy_applies_to_runs_made_before_it(world):
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    version = make_submitted(prompt, world.eng)
    _require_gate(world.support, pass_rate={"min": 0.5})
    run = _run(golden, version, world.eng, [True, True, True, False])
    run_outcome_record(run=run)
    assert run.passed is True
    _require_gate(world.support, pass_rate={"min": 0.9})
    _refused(version, world.gov)


def test_run_outcome_record_keeps_the_checks_on_the_run(world):
    _require_gate(world.support, pass_rate={"min": 0.9}, latency_p95_ms={"max": 50})
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    run = _run(golden, make_version(prompt, world.eng), world.eng, [True] * 4)
    run_outcome_record(run=run)
    run.refresh_from_db()
    assert run.passed is False
    assert [(c["name"], c["passed"]) for c in run.gate["checks"]] == [
        ("pass_rate", True),
        ("latency_p95_ms", False),
    ]


def test_the_verdict_is_none_for_subjects_whose_policy_asks_for_none(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    assert gate_verdict(subject_kind=SubjectKind.PROMPT_VERSION, subject=version, team=world.support) is None
    _require_gate(world.support)
    verdict = gate_verdict(subject_kind=SubjectKind.PROMPT_VERSION, subject=version, team=world.support)
    assert verdict is not None and verdict.passed is False


# --- adapter versions: before an alias move -----------------------------------------------------------------


@pytest.fixture
def adapter(world):
    base = FoundationModel.objects.create(
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
        created_by=world.eng,
    )
    return adapter_create(actor=world.eng, base_model=base, name="support-tone", description="")


def _adapter_version(world, adapter, n):
    return adapter_version_register(
        actor=world.eng, adapter=adapter, artifact_uri=f"gs://atalaya-artifacts/support-tone/run-{n}"
    )


def test_an_alias_move_needs_a_passing_run_of_that_adapter_version(world, adapter):
    _require_gate(world.support, kind=SubjectKind.ALIAS_MOVE, pass_rate={"min": 0.9})
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    renders = make_approved(prompt, world.eng, world.gov)
    v1 = _adapter_version(world, adapter, 1)
    v2 = _adapter_version(world, adapter, 2)
    _run(golden, renders, world.eng, [True] * 4, adapter_version=v1)  # another version's run does not count
    _run(golden, renders, world.eng, [True, False, False, False], adapter_version=v2)
    move = alias_move_request(actor=world.eng, adapter=adapter, alias="production", version_number=2).move
    error = _refused(move, world.gov, SubjectKind.ALIAS_MOVE)
    assert "pass rate 0.25" in error.message
    _run(golden, renders, world.eng, [True] * 4, adapter_version=v2)
    _approve(move, world.gov, SubjectKind.ALIAS_MOVE)
    move.refresh_from_db()
    assert move.status == MoveStatus.APPLIED
    assert adapter.aliases.get(name="production").version == v2


def test_taking_an_alias_off_is_not_gated(world, adapter):
    _require_gate(world.support, kind=SubjectKind.ALIAS_MOVE)
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    v1 = _adapter_version(world, adapter, 1)
    _run(golden, make_approved(prompt, world.eng, world.gov), world.eng, [True] * 4, adapter_version=v1)
    move = alias_move_request(actor=world.eng, adapter=adapter, alias="production", version_number=1).move
    _approve(move, world.gov, SubjectKind.ALIAS_MOVE)
    off = alias_move_request(actor=world.eng, adapter=adapter, alias="production", version_number=None).move
    _approve(off, world.gov, SubjectKind.ALIAS_MOVE)
    assert AliasMove.objects.get(pk=off.pk).status == MoveStatus.APPLIED


def test_adapter_subject_hash_changes_with_the_artifact(world, adapter):
    v1 = _adapter_version(world, adapter, 1)
    before = adapter_subject_hash(v1)
    v1.artifact_uri = "gs://elsewhere/run-1"
    assert adapter_subject_hash(v1) != before


# --- adapter versions: before a deployment ------------------------------------------------------------------


def test_a_deployment_of_an_adapter_version_needs_its_passing_run(world, adapter, settings, tmp_path):
    from apps.cloud.jobs import get_serving_backend
    from apps.tuning.deployments import deployment_create, deployment_submit, endpoint_create
    from apps.tuning.models import DeploymentStatus

    settings.JOB_BACKEND = "local"
    get_serving_backend.cache_clear()
    _require_gate(world.support, kind=SubjectKind.DEPLOYMENT, pass_rate={"min": 1.0})
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    renders = make_approved(prompt, world.eng, world.gov)
    v1 = _adapter_version(world, adapter, 1)
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-bot")
    deployment = deployment_create(
        actor=world.eng, endpoint=endpoint, strategy="replace", adapter_version=v1, justification="tone"
    )
    deployment_submit(actor=world.eng, deployment=deployment)
    error = _refused(deployment, world.gov, SubjectKind.DEPLOYMENT)
    assert "No evaluation run on this content" in error.message
    _run(golden, renders, world.eng, [True] * 4, adapter_version=v1)
    _approve(deployment, world.gov, SubjectKind.DEPLOYMENT)
    deployment.refresh_from_db()
    assert deployment.status != DeploymentStatus.PENDING_APPROVAL
    get_serving_backend.cache_clear()


# --- the API says why ---------------------------------------------------------------------------------------


def test_the_decisions_api_answers_409_with_the_checks(world, client):
    _require_gate(world.support, pass_rate={"min": 0.9})
    prompt = make_prompt(world.support, world.eng)
    golden = _golden(world.support, world.eng, prompt)
    version = make_submitted(prompt, world.eng)
    run = _run(golden, version, world.eng, [True, False, False, False])
    client.force_login(world.gov)
    shown = client.get(f"/api/v1/approvals/{_request(version).pk}/").json()["evaluation_gate"]
    assert shown["passed"] is False
    assert shown["thresholds"] == {"pass_rate": {"min": 0.9}}
    assert shown["runs"][0]["checks"][0]["actual"] == 0.25
    response = client.post(
        f"/api/v1/approvals/{_request(version).pk}/decisions/",
        {"decision": "approve", "comment": "looks fine"},
        content_type="application/json",
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "evaluation_gate_failed"
    assert "pass rate 0.25 is below the required minimum of 0.9" in error["message"]
    assert error["details"]["runs"][0]["run"] == run.pk
    assert error["details"]["runs"][0]["checks"][0]["name"] == "pass_rate"
    assert not ApprovalDecision.objects.exists()
