"""The evaluation gate: a subject is approved only after a run on exactly its content has passed.

Which runs decide, for a subject (a prompt version, or the adapter version of an alias move or a deployment):
- the completed runs whose `subject_hash` is the subject's (a prompt version's content hash: a version with the
  same content shares its runs; an adapter version's identity and artifact);
- per golden set, the newest of those runs; it counts only on the set's latest version (a set edited since the run
  needs a new run);
- every one must pass the policy's thresholds (apps/evaluation/gate.py), the regression rule included, against the
  run's baseline (the version on production, run on the same golden-set version);
- for a prompt version, every golden set of that prompt must have such a run; in all, at least one run.

The approval engine asks `gate_verdict` before it records an approval (apps/workflows/services.py); the review
page shows the same verdict, run by run and case by case.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from django.db import models
from django.db.models import Max

from apps.accounts.models import Team
from apps.catalog.models import PromptVersion
from apps.evaluation.gate import GateCheck, GateOutcome, gate_check
from apps.evaluation.models import EvaluationRun, GoldenSet, GoldenSetVersion, RunStatus
from apps.registry.models import AdapterVersion
from apps.workflows.models import SubjectKind
from apps.workflows.registry import evaluation_gate_register

# Which subject kinds the gate applies to, and where each finds the thing that was evaluated.
GATED_KINDS = (SubjectKind.PROMPT_VERSION, SubjectKind.ALIAS_MOVE, SubjectKind.DEPLOYMENT)


def prompt_subject_hash(version: PromptVersion) -> str:
    return version.content_hash


def adapter_subject_hash(version: AdapterVersion) -> str:
    """An adapter version is immutable once registered: its id and artifact identify what was evaluated."""
    return hashlib.sha256(f"adapter-version:{version.pk}:{version.artifact_uri}".encode()).hexdigest()


@dataclass(frozen=True)
class RunVerdict:
    """One golden set's part of the verdict."""

    golden_set: GoldenSet
    run: EvaluationRun | None
    passed: bool
    reason: str
    outcome: GateOutcome | None = None


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str
    thresholds: dict[str, Any]
    runs: list[RunVerdict] = field(default_factory=list)

    def as_details(self) -> dict[str, Any]:
        """The API error's details: what blocked the approval, run by run and check by check."""
        return {
            "thresholds": self.thresholds,
            "runs": [
                {
                    "golden_set": item.golden_set.name,
                    "run": item.run.pk if item.run else None,
                    "passed": item.passed,
                    "reason": item.reason,
                    "checks": [c.to_dict() for c in (item.outcome.checks if item.outcome else [])],
                }
                for item in self.runs
            ],
        }


# A policy that requires the gate but names no threshold: every case must pass.
DEFAULT_THRESHOLDS: dict[str, Any] = {"pass_rate": {"min": 1.0}}


def _policy(subject_kind: str, team: Team) -> tuple[bool, dict[str, Any]]:
    from apps.workflows.services import approval_policy_for

    policy = approval_policy_for(subject_kind=subject_kind, team=team)
    return policy.requires_evaluation, dict(policy.evaluation_thresholds or DEFAULT_THRESHOLDS)


def run_outcome(run: EvaluationRun, thresholds: dict[str, Any]) -> GateOutcome:
    """A completed run against thresholds; the regression rule compares with the run's baseline."""
    baseline = run.baseline_run
    outcome = gate_check(
        run.summary or {},
        thresholds,
        baseline=baseline.summary
        if baseline is not None and baseline.status == RunStatus.COMPLETED
        else None,
    )
    if (
        thresholds.get("max_regression") is not None
        and baseline is not None
        and baseline.status != RunStatus.COMPLETED
    ):
        waiting = GateCheck(
            name="regression",
            kind="regression",
            direction="min",
            required=None,
            actual=None,
            passed=False,
            message=f"The production version's run #{baseline.pk} has not completed: compare when it has.",
        )
        return GateOutcome(passed=False, checks=[*outcome.checks, waiting])
    return outcome


def _subject_kind_for_run(run: EvaluationRun) -> str:
    return SubjectKind.ALIAS_MOVE if run.adapter_version_id else SubjectKind.PROMPT_VERSION


def run_outcome_record(*, run: EvaluationRun) -> None:
    """Record, on a run that has just completed, whether it passes the thresholds that apply now (the approval
    decision recomputes it, so a policy changed since is honoured). Call inside the run's transaction."""
    _, thresholds = _policy(_subject_kind_for_run(run), run.team)
    if run.status != RunStatus.COMPLETED:
        run.passed = False
        run.gate = {
            "thresholds": thresholds,
            "checks": [],
            "reason": run.error or "The run did not complete.",
        }
    else:
        outcome = run_outcome(run, thresholds)
        run.passed = outcome.passed
        run.gate = {
            "thresholds": thresholds,
            "checks": [
                {
                    "name": c.name,
                    "required": c.required,
                    "actual": c.actual,
                    "passed": c.passed,
                    "message": c.message,
                }
                for c in outcome.checks
            ],
        }
    run.save(update_fields=["passed", "gate", "updated_at"])


def run_gate_now(run: EvaluationRun) -> dict[str, Any]:
    """A run's gate outcome under the policy that applies now (as an approval would judge it), in the JSON
    form `run_outcome_record` stores; for a run that did not complete, what was recorded."""
    if run.status != RunStatus.COMPLETED:
        return dict(run.gate or {})
    _, thresholds = _policy(_subject_kind_for_run(run), run.team)
    return {"thresholds": thresholds, **run_outcome(run, thresholds).to_dict()}


def _latest_versions(set_ids: set[int]) -> dict[int, int]:
    """golden set id → the id of its latest version."""
    newest = dict(
        GoldenSetVersion.objects.filter(golden_set_id__in=set_ids)
        .values("golden_set_id")
        .annotate(n=Max("number"))
        .values_list("golden_set_id", "n")
    )
    return {
        golden_set_id: version_id
        for golden_set_id, version_id, number in GoldenSetVersion.objects.filter(
            golden_set_id__in=set_ids
        ).values_list("golden_set_id", "id", "number")
        if newest.get(golden_set_id) == number
    }


def _verdict(
    *, runs: models.QuerySet[EvaluationRun], required_sets: list[GoldenSet], thresholds: dict[str, Any]
) -> GateVerdict:
    newest: dict[int, EvaluationRun] = {}
    for run in (
        runs.filter(status=RunStatus.COMPLETED)
        .select_related("golden_set_version__golden_set", "baseline_run")
        .order_by("-finished_at", "-id")
    ):
        newest.setdefault(run.golden_set_version.golden_set_id, run)
    sets = {s.pk: s for s in required_sets}
    sets.update(
        {run.golden_set_version.golden_set_id: run.golden_set_version.golden_set for run in newest.values()}
    )
    latest = _latest_versions(set(sets))
    items: list[RunVerdict] = []
    for set_id, golden_set in sorted(sets.items(), key=lambda kv: kv[1].name):
        found = newest.get(set_id)
        if found is None:
            items.append(
                RunVerdict(
                    golden_set, None, False, f"No completed evaluation run on golden set {golden_set.name}."
                )
            )
        elif latest.get(set_id) != found.golden_set_version_id:
            items.append(
                RunVerdict(
                    golden_set,
                    found,
                    False,
                    f"Golden set {golden_set.name} has changed since run #{found.pk}: run it again.",
                )
            )
        else:
            outcome = run_outcome(found, thresholds)
            reason = "" if outcome.passed else "; ".join(c.message for c in outcome.checks if not c.passed)
            items.append(RunVerdict(golden_set, found, outcome.passed, reason, outcome))
    if not items:
        return GateVerdict(False, "No evaluation run on this content: run its golden set first.", thresholds)
    failed = [item for item in items if not item.passed]
    if failed:
        return GateVerdict(False, failed[0].reason, thresholds, items)
    return GateVerdict(True, "", thresholds, items)


def prompt_version_verdict(version: PromptVersion, thresholds: dict[str, Any]) -> GateVerdict:
    runs = EvaluationRun.objects.filter(
        team_id=version.prompt.team_id,
        prompt_version__prompt_id=version.prompt_id,
        adapter_version__isnull=True,
        subject_hash=prompt_subject_hash(version),
    )
    own_sets = list(GoldenSet.objects.filter(prompt_id=version.prompt_id, versions__isnull=False).distinct())
    return _verdict(runs=runs, required_sets=own_sets, thresholds=thresholds)


def adapter_version_verdict(version: AdapterVersion, thresholds: dict[str, Any]) -> GateVerdict:
    runs = EvaluationRun.objects.filter(
        team_id=version.adapter.team_id,
        adapter_version_id=version.pk,
        subject_hash=adapter_subject_hash(version),
    )
    return _verdict(runs=runs, required_sets=[], thresholds=thresholds)


def gate_subject(subject_kind: str, subject: models.Model) -> PromptVersion | AdapterVersion | None:
    """What was evaluated for this subject; None when there is nothing to evaluate (an alias removed, a
    deployment of a base model)."""
    if subject_kind == SubjectKind.PROMPT_VERSION:
        return subject  # type: ignore[return-value]
    if subject_kind == SubjectKind.ALIAS_MOVE:
        return subject.version  # type: ignore[attr-defined]
    if subject_kind == SubjectKind.DEPLOYMENT:
        return subject.adapter_version  # type: ignore[attr-defined]
    return None


def gate_verdict(*, subject_kind: str, subject: models.Model, team: Team) -> GateVerdict | None:
    """The gate's verdict on a subject, or None when its policy does not ask for one."""
    if subject_kind not in GATED_KINDS:
        return None
    required, thresholds = _policy(subject_kind, team)
    if not required:
        return None
    evaluated = gate_subject(subject_kind, subject)
    if evaluated is None:
        return None
    if isinstance(evaluated, PromptVersion):
        return prompt_version_verdict(evaluated, thresholds)
    return adapter_version_verdict(evaluated, thresholds)


def register() -> None:
    evaluation_gate_register(gate_verdict)
