"""What a review page shows about the evaluation gate: the verdict the approval engine decides by, each golden
set's run (whether the set changed since, the threshold checks with required and actual values, the regression
against production) and the failing cases inline, one by one. Reads only: the gate is apps/evaluation/gates.py,
and the engine refuses an approval on its own whatever a page shows."""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q
from django.urls import reverse

from apps.catalog.models import PromptVersion
from apps.evaluation.models import CaseResult, EvaluationRun, GoldenSet
from apps.workflows.models import ApprovalPolicy, ApprovalRequest, SubjectKind
from apps.workflows.services import approval_gate_verdict, approval_policy_for

FAILING_CASES_SHOWN = 25  # per run; the run's page has them all


@dataclass
class RunPanel:
    golden_set: GoldenSet
    run: EvaluationRun
    passed: bool  # this run counts for the gate and passed it
    reason: str  # why not, as the gate says it
    latest_number: int
    checks: list[Any]
    failing: list[CaseResult]
    failing_total: int

    @property
    def url(self) -> str:
        return run_url(self.run)

    @property
    def stale(self) -> bool:
        """The golden set has a newer version than the one the run was scored on."""
        return self.run.golden_set_version.number < self.latest_number


@dataclass
class GatePanel:
    passed: bool
    reason: str
    policy: ApprovalPolicy
    runs: list[RunPanel] = field(default_factory=list)
    missing_sets: list[GoldenSet] = field(default_factory=list)  # golden sets with no run on this content
    other_content_runs: list[EvaluationRun] = field(default_factory=list)


def run_url(run: EvaluationRun) -> str:
    return reverse("evaluation_runs:run", args=[run.pk])


def evaluation_gate_panel(*, approval: ApprovalRequest) -> GatePanel | None:
    """The panel for an approval request's subject, or None when its policy does not require an evaluation
    (or there is nothing to evaluate: an alias taken off, a base model deployed)."""
    verdict = approval_gate_verdict(request=approval)
    if verdict is None:
        return None
    items = list(verdict.runs)
    runs = [item.run for item in items if item.run is not None]
    latest = dict(
        GoldenSet.objects.filter(pk__in=[item.golden_set.pk for item in items])
        .annotate(latest=Max("versions__number"))
        .values_list("pk", "latest")
    )
    failing_by_run: dict[int, list[CaseResult]] = {}
    totals: dict[int, int] = {}
    for run in runs:
        results = CaseResult.objects.filter(Q(passed=False) | ~Q(error=""), run=run).select_related("case")
        totals[run.pk] = results.count()
        failing_by_run[run.pk] = list(results.order_by("case__position")[:FAILING_CASES_SHOWN])
    panel = GatePanel(
        passed=verdict.passed,
        reason=verdict.reason,
        policy=approval_policy_for(subject_kind=approval.subject_kind, team=approval.team),
    )
    for item in items:
        if item.run is None:
            panel.missing_sets.append(item.golden_set)
            continue
        panel.runs.append(
            RunPanel(
                golden_set=item.golden_set,
                run=item.run,
                passed=item.passed,
                reason=item.reason,
                latest_number=latest.get(item.golden_set.pk) or 0,
                checks=list(item.outcome.checks) if item.outcome is not None else [],
                failing=failing_by_run[item.run.pk],
                failing_total=totals[item.run.pk],
            )
        )
    version = approval.subject
    if approval.subject_kind == SubjectKind.PROMPT_VERSION and isinstance(version, PromptVersion):
        panel.other_content_runs = list(
            EvaluationRun.objects.filter(prompt_version=version, adapter_version__isnull=True)
            .exclude(subject_hash=version.content_hash)
            .order_by("-created_at", "-id")[:5]
        )
    return panel
