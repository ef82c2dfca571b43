"""Golden sets and finished evaluation runs for the gate's review-page tests (UI and browser): rows written
directly, as a finished run leaves them."""

import hashlib
import json
from typing import Any

from django.utils import timezone

from apps.catalog.models import PromptVersion
from apps.evaluation.gates import adapter_subject_hash, prompt_subject_hash
from apps.evaluation.metrics import aggregate
from apps.evaluation.models import (
    CaseResult,
    EvaluationRun,
    GoldenCase,
    GoldenSet,
    GoldenSetVersion,
    RunStatus,
)

CASES = [
    {
        "name": "refund policy",
        "variables": {"company": "Acme", "question": "Can I get a refund?"},
        "must_contain": ["30 days"],
    },
    {
        "name": "opening hours",
        "variables": {"company": "Acme", "question": "When are you open?"},
        "must_contain": ["9"],
    },
    {
        "name": "no promises",
        "variables": {"company": "Acme", "question": "Will it arrive tomorrow?"},
        "must_not_contain": ["guarantee"],
    },
]


def golden_set_make(
    *, prompt: Any, author: Any, name: str = "support-basics", cases: list | None = None
) -> GoldenSetVersion:
    golden_set = GoldenSet.objects.create(team=prompt.team, name=name, prompt=prompt, created_by=author)
    return golden_set_version_add(golden_set=golden_set, author=author, cases=cases or CASES)


def golden_set_version_add(*, golden_set: GoldenSet, author: Any, cases: list) -> GoldenSetVersion:
    number = golden_set.versions.count() + 1
    version = GoldenSetVersion.objects.create(
        golden_set=golden_set,
        number=number,
        content_hash=hashlib.sha256(json.dumps(cases, sort_keys=True).encode()).hexdigest(),
        case_count=len(cases),
        created_by=author,
    )
    for position, case in enumerate(cases, start=1):
        GoldenCase.objects.create(version=version, position=position, **case)
    return version


def run_finish(
    *,
    version: PromptVersion,
    golden: GoldenSetVersion,
    requester: Any,
    outputs: list[tuple[str, list[str], str]],  # per case: output, failures, error
    provider: str = "replay",
    subject_hash: str | None = None,
    adapter_version: Any = None,
    baseline: EvaluationRun | None = None,
) -> EvaluationRun:
    """A completed run of `version` on `golden` (answered by `adapter_version` when given), with one result
    per case."""
    if subject_hash is None:
        subject_hash = (
            adapter_subject_hash(adapter_version) if adapter_version else prompt_subject_hash(version)
        )
    run = EvaluationRun.objects.create(
        team=version.prompt.team,
        golden_set_version=golden,
        prompt_version=version,
        adapter_version=adapter_version,
        baseline_run=baseline,
        subject_hash=subject_hash,
        provider=provider,
        model=version.model,
        status=RunStatus.COMPLETED,
        summary=aggregate(
            [
                {
                    "passed": not failures and not error,
                    "errored": bool(error),
                    "latency_ms": 120.0,
                    "tokens_in": 40,
                    "tokens_out": 12,
                }
                for _, failures, error in outputs
            ]
        ),
        cases_total=len(outputs),
        cases_done=len(outputs),
        requested_by=requester,
        started_at=timezone.now(),
        finished_at=timezone.now(),
    )
    for case, (output, failures, error) in zip(golden.cases.order_by("position"), outputs, strict=True):
        CaseResult.objects.create(
            run=run,
            case=case,
            request_key=hashlib.sha256(f"{run.pk}:{case.pk}".encode()).hexdigest(),
            output=output,
            failures=failures,
            error=error,
            passed=not failures and not error,
            latency_ms=120.0,
            tokens_in=40,
            tokens_out=12,
        )
    return run


FAILING = [
    ("Refunds are possible within 14 days.", ["missing required phrase: '30 days'"], ""),
    ("We open at 9 every weekday.", [], ""),
    ("", [], "provider error: 503 Service Unavailable after 3 attempts"),
]
PASSING = [
    ("Refunds are possible within 30 days.", [], ""),
    ("We open at 9 every weekday.", [], ""),
    ("It usually arrives in two days.", [], ""),
]
