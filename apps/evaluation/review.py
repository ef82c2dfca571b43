"""What a review page shows about the evaluation gate: the verdict, each run it looked at (golden set,
whether the set changed since, the threshold checks with required and actual values, the regression against
production) and the failing cases inline, one by one. Reads only; the gate itself is apps/evaluation/gates.py
and the approval engine refuses an approval on its own whatever this page shows."""

from dataclasses import dataclass, field
from typing import Any

from django.db.models import Max, Q
from django.urls import reverse

from apps.evaluation.gates import gate_verdict
from apps.evaluation.models import CaseResult, EvaluationRun, GoldenSet
from apps.workflows.models import ApprovalPolicy, SubjectKind
from apps.workflows.services import GATED_KINDS, approval_policy_for

FAILING_CASES_SHOWN = 25  # per run; the run's page has them all
OUTPUT_EXCERPT = 400  # characters of a failing case's output


@dataclass
class RunPanel:
    run: EvaluationRun
    url: str
    golden_set: GoldenSet
    latest_number: int
    checks: list[Any]
    failing: list[CaseResult]
    failing_total: int

    @property
    def stale(self) -> bool:
        """The golden set has a newer version than the one the run was scored on."""
        return self.run.golden_set_version.number < self.latest_number

    @property
    def failed_checks(self) -> list[Any]:
        return [check for check in self.checks if not check.passed]


@dataclass
class GatePanel:
    passed: bool
    reason: str
    policy: ApprovalPolicy
    runs: list[RunPanel] = field(default_factory=list)
    missing_sets: list[GoldenSet] = field(default_factory=list)  # a prompt's sets with no run on this content
    other_content_runs: list[EvaluationRun] = field(default_factory=list)


def run_url(run: EvaluationRun) -> str:
    return reverse("evaluation_runs:run", args=[run.pk])


def evaluation_gate_panel(*, subject_kind: str, subject: Any, team: Any) -> GatePanel | None:
    """The panel for one subject, or None when its policy does not require an evaluation."""
    if subject is None or subject_kind not in GATED_KINDS:
        return None
    if subject_kind == SubjectKind.ALIAS_MOVE and subject.version_id is None:
        return None  # taking an alias off a version: nothing to evaluate
    verdict = gate_verdict(subject_kind=subject_kind, subject=subject, team=team)
    if verdict is None:
        return None
    runs = list(verdict.runs)
    set_ids = {run.golden_set_version.golden_set_id for run in runs}
    latest = dict(
        GoldenSet.objects.filter(pk__in=set_ids)
        .annotate(latest=Max("versions__number"))
        .values_list("pk", "latest")
    )
    failing_q = Q(passed=False) | ~Q(error="")
    failing_by_run: dict[int, list[CaseResult]] = {}
    totals: dict[int, int] = {}
    for run in runs:
        results = CaseResult.objects.filter(failing_q, run=run).select_related("case")
        totals[run.pk] = results.count()
        failing_by_run[run.pk] = list(results.order_by("case__position")[:FAILING_CASES_SHOWN])
    outcomes = verdict.outcomes or {}
    panels = []
    for run in runs:
        outcome = outcomes.get(run.pk)
        checks = list(outcome.checks) if outcome is not None else _stored_checks(run)
        panels.append(
            RunPanel(
                run=run,
                url=run_url(run),
                golden_set=run.golden_set_version.golden_set,
                latest_number=latest.get(run.golden_set_version.golden_set_id) or 0,
                checks=checks,
                failing=failing_by_run[run.pk],
                failing_total=totals[run.pk],
            )
        )
    panel = GatePanel(
        passed=verdict.passed,
        reason=verdict.reason,
        policy=approval_policy_for(subject_kind=subject_kind, team=team),
        runs=panels,
    )
    if subject_kind == SubjectKind.PROMPT_VERSION:
        version = subject
        panel.missing_sets = list(
            GoldenSet.objects.filter(prompt=version.prompt).exclude(pk__in=set_ids).order_by("name")
        )
        panel.other_content_runs = list(
            EvaluationRun.objects.filter(prompt_version=version, adapter_version__isnull=True)
            .exclude(subject_hash=version.content_hash)
            .select_related("golden_set_version__golden_set")
            .order_by("-created_at", "-id")[:5]
        )
    return panel


@dataclass(frozen=True)
class _Check:
    name: str
    required: Any
    actual: Any
    passed: bool
    message: str


def _stored_checks(run: EvaluationRun) -> list[_Check]:
    """The checks recorded on the run when it finished (when the verdict has no fresh outcome for it)."""
    rows = (run.gate or {}).get("checks") or []
    return [
        _Check(
            name=str(row.get("name", "")),
            required=row.get("required"),
            actual=row.get("actual"),
            passed=bool(row.get("passed")),
            message=str(row.get("message", "")),
        )
        for row in rows
        if isinstance(row, dict)
    ]
