"""TEMPORARY stand-in for main's apps/evaluation/gates.py (the lead's), with the interface described in the
task notes, so the review page's panel can be built before it lands. Replaced by main's module on merge."""

from dataclasses import dataclass, field
from typing import Any

from apps.evaluation import gate
from apps.evaluation.models import EvaluationRun, GoldenSet, RunStatus


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reason: str
    runs: list[EvaluationRun] = field(default_factory=list)
    outcomes: dict[int, Any] = field(default_factory=dict)


def prompt_subject_hash(version: Any) -> str:
    return version.content_hash


def adapter_subject_hash(adapter_version: Any) -> str:
    import hashlib

    return hashlib.sha256(f"{adapter_version.pk}:{adapter_version.artifact_uri}".encode()).hexdigest()


def _subject(subject_kind: str, subject: Any) -> tuple[Any, str]:
    if subject_kind == "prompt_version":
        return subject, subject.content_hash
    version = getattr(subject, "version", None) or getattr(subject, "adapter_version", None)
    import hashlib

    return version, hashlib.sha256(f"{version.pk}:{version.artifact_uri}".encode()).hexdigest()


def gate_verdict(*, subject_kind: str, subject: Any, team: Any) -> GateVerdict | None:
    from apps.workflows.services import approval_policy_for

    policy = approval_policy_for(subject_kind=subject_kind, team=team)
    if not policy.requires_evaluation:
        return None
    _, subject_hash = _subject(subject_kind, subject)
    runs = EvaluationRun.objects.filter(subject_hash=subject_hash, status=RunStatus.COMPLETED).select_related(
        "golden_set_version__golden_set", "baseline_run"
    )
    newest: dict[int, EvaluationRun] = {}
    for run in runs.order_by("-created_at", "-id"):
        newest.setdefault(run.golden_set_version.golden_set_id, run)
    chosen = list(newest.values())
    if subject_kind == "prompt_version":
        for golden_set in GoldenSet.objects.filter(prompt=subject.prompt):
            if golden_set.pk not in newest:
                return GateVerdict(False, f"No run on golden set {golden_set.name}.", chosen, {})
    if not chosen:
        return GateVerdict(False, "No evaluation run on this content.", [], {})
    outcomes = {}
    for run in chosen:
        latest = run.golden_set_version.golden_set.versions.order_by("-number").first()
        if latest is not None and latest.pk != run.golden_set_version_id:
            return GateVerdict(False, "The golden set changed since the run.", chosen, outcomes)
        baseline = run.baseline_run.summary if run.baseline_run else None
        outcomes[run.pk] = gate.gate_check(run.summary, policy.evaluation_thresholds, baseline=baseline)
    if not all(o.passed for o in outcomes.values()):
        return GateVerdict(False, "A run did not pass the thresholds.", chosen, outcomes)
    return GateVerdict(True, "Passed.", chosen, outcomes)
