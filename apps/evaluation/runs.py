"""Evaluation runs: starting one (and its production baseline), carrying it out in the worker, recorded
responses for the replay provider, and the reads of runs and their per-case results.

A run renders its prompt version for every case of one golden-set version, sends the requests through a
provider (`apps.evaluation.providers`: Vertex AI Gemini, an OpenAI-compatible endpoint, or the replay of
recorded responses), and scores each answer (`apps.evaluation.metrics`). The worker's service
(`evaluation_run_execute`) is idempotent: a case that already has a result is never sent again, results are
written in small transactions as they come back (a crash leaves only whole results), and a second delivery
of the task carries on where the first stopped.

Cases with a rubric are judged by a catalog prompt of the team (`EVALUATION_JUDGE_PROMPT`, default
`atalaya-judge`, at its `production` label; the seed creates it from `metrics.JUDGE_DEFAULT_TEMPLATE`); a
malformed verdict is an error on that case. Every live answer is kept as a `RecordedResponse` of the team,
so the same requests can be replayed later (CI regression checks, re-scoring, the demo).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.safestring import SafeString

from apps.accounts.models import Team, User
from apps.accounts.roles import CATALOG_READERS, Role
from apps.accounts.selectors import user_has_role, user_team_ids
from apps.audit.services import audit_event_record
from apps.catalog.models import Prompt, PromptLabel, PromptVersion, content_hash
from apps.catalog.selectors import _word_diff
from apps.catalog.templating import TemplateProblem, VariablesMismatch, render_messages
from apps.common.exceptions import NotFound, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.costs.pricing import PriceBook
from apps.evaluation import metrics, providers
from apps.evaluation.gates import adapter_subject_hash, run_outcome_record
from apps.evaluation.golden_sets import golden_sets_applicable
from apps.evaluation.models import (
    CaseResult,
    EvaluationProvider,
    EvaluationRun,
    GoldenCase,
    GoldenSet,
    GoldenSetVersion,
    RecordedResponse,
    RunStatus,
)
from apps.evaluation.providers.replay import ReplayProvider
from apps.registry.models import AdapterAlias, AdapterVersion

# Who may start a run in a team: the prompt's editors and governance.
RUN_STARTERS = frozenset({Role.ADMIN, Role.ENGINEER, Role.GOVERNANCE})
RUN_READERS = CATALOG_READERS
PRODUCTION_LABEL = "production"
# An adapter's version in production is the one behind the first of these aliases that exists.
ADAPTER_PRODUCTION_ALIASES = ("production", "champion")
# Results are written, and the progress shown, after every batch of this many cases.
BATCH_SIZE = 50
# A worker holds the run it carries out for LEASE_DURATION, renewing it (at most every LEASE_RENEW_EVERY) as
# results come back; a running run whose lease expired lost its worker: beat sends it again (it carries on).
LEASE_DURATION = timedelta(minutes=10)
LEASE_RENEW_EVERY = timedelta(seconds=30)
# A queued run whose task has not started after this long is sent again.
QUEUED_RESEND_AFTER = timedelta(minutes=5)
# A running run from before leases (none recorded) not heard from for this long lost its worker.
STALE_AFTER = timedelta(minutes=10)


# --- subjects --------------------------------------------------------------------------------------------


def prompt_run_subject_hash(version: PromptVersion, *, model: str, parameters: dict[str, Any]) -> str:
    """A prompt run's subject: the version's messages with the model and parameters the run sends. It equals
    the version's content hash (what the gate matches runs on) only when the run overrides neither, so a run
    on another model is kept and shown but never counts for the version."""
    return content_hash(messages=version.messages, model=model, parameters=parameters)


def adapter_served_model(adapter_version: AdapterVersion) -> str:
    """The model name an adapter version answers to on an OpenAI-compatible server (a vLLM LoRA module):
    EVALUATION_ADAPTER_MODEL_NAME with {adapter} and {version}."""
    return settings.EVALUATION_ADAPTER_MODEL_NAME.format(
        adapter=adapter_version.adapter.name, version=adapter_version.number
    )


# --- starting a run ----------------------------------------------------------------------------------------


def _field_error(field: str, message: str, code: str) -> Unprocessable:
    return Unprocessable(message, code=code, details={"field": field})


def _check_provider(kind: str) -> None:
    if kind not in EvaluationProvider.values:
        raise _field_error(
            "provider",
            f"Unknown provider {kind!r}: use one of {', '.join(EvaluationProvider.values)}.",
            "unknown_provider",
        )
    if kind == EvaluationProvider.REPLAY:
        return  # answers from the team's recorded responses: always available
    try:
        providers.get_provider(kind)
    except (providers.ProviderError, ImproperlyConfigured) as exc:
        raise _field_error(
            "provider", f"The {kind} provider is not configured: {exc}", "provider_not_configured"
        ) from None


def _golden_set_version(*, prompt: Prompt, golden_set: GoldenSet | None) -> GoldenSetVersion:
    if golden_set is None:
        golden_set = GoldenSet.objects.filter(prompt=prompt).order_by("name").first()
        if golden_set is None:
            raise _field_error(
                "golden_set",
                f"{prompt.name!r} has no golden set of its own: name a golden set of its team.",
                "golden_set_required",
            )
    elif not golden_sets_applicable(prompt=prompt).filter(pk=golden_set.pk).exists():
        raise _field_error(
            "golden_set",
            f"The golden set {golden_set.name!r} is not {prompt.name!r}'s nor shared in its team.",
            "golden_set_not_applicable",
        )
    version = golden_set.versions.order_by("-number").first()
    if version is None or version.case_count == 0 or not version.cases.exists():
        raise _field_error(
            "golden_set", f"The golden set {golden_set.name!r} has no cases.", "golden_set_empty"
        )
    return version


def _create_run(
    *,
    actor: User,
    prompt_version: PromptVersion,
    golden_set_version: GoldenSetVersion,
    provider: str,
    model: str,
    parameters: dict[str, Any],
    adapter_version: AdapterVersion | None,
    baseline_run: EvaluationRun | None,
    is_baseline: bool = False,
) -> EvaluationRun:
    subject_hash = (
        adapter_subject_hash(adapter_version)
        if adapter_version
        else prompt_run_subject_hash(prompt_version, model=model, parameters=parameters)
    )
    run = EvaluationRun.objects.create(
        team_id=prompt_version.prompt.team_id,
        golden_set_version=golden_set_version,
        prompt_version=prompt_version,
        adapter_version=adapter_version,
        subject_hash=subject_hash,
        provider=provider,
        model=model,
        parameters=parameters,
        baseline_run=baseline_run,
        cases_total=golden_set_version.cases.count(),
        requested_by=actor,
    )
    changes: dict[str, Any] = {
        "prompt_version": f"{prompt_version.prompt.name} v{prompt_version.number}",
        "golden_set": str(golden_set_version),
        "provider": provider,
        "model": model,
        "subject_hash": subject_hash,
    }
    if adapter_version is not None:
        changes["adapter_version"] = f"{adapter_version.adapter.name} v{adapter_version.number}"
    if baseline_run is not None:
        changes["baseline_run"] = baseline_run.pk
    if is_baseline:
        changes["role"] = "production baseline"
    audit_event_record(actor=actor, action="evaluation.run_started", target=run, changes=changes)
    from workers.evaluation import run_evaluation

    enqueue_on_commit(run_evaluation, run.pk)
    return run


def _reusable_run(**filters: Any) -> EvaluationRun | None:
    """The newest completed run with these parameters, or one still under way (never two at once)."""
    runs = EvaluationRun.objects.filter(**filters)
    return (
        runs.filter(status=RunStatus.COMPLETED).order_by("-created_at", "-id").first()
        or runs.filter(status__in=[RunStatus.QUEUED, RunStatus.RUNNING])
        .order_by("-created_at", "-id")
        .first()
    )


def _production_prompt_version(prompt: Prompt) -> PromptVersion | None:
    row = PromptLabel.objects.select_related("version").filter(prompt=prompt, name=PRODUCTION_LABEL).first()
    return row.version if row else None


def _production_adapter_version(adapter_version: AdapterVersion) -> AdapterVersion | None:
    aliases = {
        alias.name: alias.version
        for alias in AdapterAlias.objects.select_related("version__adapter").filter(
            adapter_id=adapter_version.adapter_id, name__in=ADAPTER_PRODUCTION_ALIASES
        )
    }
    for name in ADAPTER_PRODUCTION_ALIASES:
        if name in aliases:
            return aliases[name]
    return None


def evaluation_run_start(
    *,
    actor: User,
    prompt_version: PromptVersion,
    golden_set: GoldenSet | None = None,
    provider: str,
    model: str | None = None,
    parameters: dict[str, Any] | None = None,
    adapter_version: AdapterVersion | None = None,
) -> EvaluationRun:
    """Queue a run of a prompt version (or of an adapter version answering through it) on the latest
    version of a golden set (by default the prompt's own). When production holds another version, its
    newest completed run under the same golden-set version, provider and model becomes the baseline;
    without one, a run of production is queued too."""
    prompt = prompt_version.prompt
    team: Team = prompt.team
    if not user_has_role(actor, team.pk, RUN_STARTERS):
        raise PermissionDenied(f"Your roles in {team.slug} do not allow starting evaluation runs.")
    if adapter_version is not None and adapter_version.adapter.team_id != team.pk:
        raise _field_error(
            "adapter_version",
            "The adapter and the prompt belong to different teams.",
            "adapter_not_applicable",
        )
    _check_provider(provider)
    if parameters is not None and not isinstance(parameters, dict):
        raise _field_error("parameters", "Parameters must be a JSON object.", "invalid_parameters")
    if adapter_version is not None:
        # The adapter's run is its served module answering the version's requests: nothing else to choose.
        for field, value in (("model", model), ("parameters", parameters)):
            if value is not None and value != "":
                raise _field_error(
                    field,
                    f"An adapter run cannot set its {field}: the model is the adapter version's served name "
                    "and the parameters are the rendering prompt version's.",
                    "adapter_override",
                )
        if not prompt_version.is_frozen:
            raise _field_error(
                "prompt_version",
                f"{prompt.name} v{prompt_version.number} is a draft: an adapter is evaluated through a "
                "submitted or approved prompt version.",
                "prompt_version_draft",
            )
    gsv = _golden_set_version(prompt=prompt, golden_set=golden_set)

    def model_for(version: PromptVersion, adapter: AdapterVersion | None) -> str:
        if model:
            return model
        return adapter_served_model(adapter) if adapter is not None else version.model

    def parameters_for(version: PromptVersion) -> dict[str, Any]:
        return dict(parameters) if parameters is not None else dict(version.parameters)

    # The baseline: the same cases answered by what is on production (the prompt version behind the
    # `production` label, or for an adapter run the adapter version behind its production alias).
    if adapter_version is None:
        base_prompt, base_adapter = _production_prompt_version(prompt), None
        baseline_differs = base_prompt is not None and base_prompt.pk != prompt_version.pk
    else:
        base_prompt, base_adapter = prompt_version, _production_adapter_version(adapter_version)
        baseline_differs = base_adapter is not None and base_adapter.pk != adapter_version.pk

    with transaction.atomic():
        baseline_run = None
        if baseline_differs and base_prompt is not None:
            base_model = model_for(base_prompt, base_adapter)
            baseline_run = _reusable_run(
                prompt_version=base_prompt,
                adapter_version=base_adapter,
                golden_set_version=gsv,
                provider=provider,
                model=base_model,
            ) or _create_run(
                actor=actor,
                prompt_version=base_prompt,
                golden_set_version=gsv,
                provider=provider,
                model=base_model,
                parameters=parameters_for(base_prompt),
                adapter_version=base_adapter,
                baseline_run=None,
                is_baseline=True,
            )
        return _create_run(
            actor=actor,
            prompt_version=prompt_version,
            golden_set_version=gsv,
            provider=provider,
            model=model_for(prompt_version, adapter_version),
            parameters=parameters_for(prompt_version),
            adapter_version=adapter_version,
            baseline_run=baseline_run,
        )


# --- recorded responses ----------------------------------------------------------------------------------


def _as_response(row: RecordedResponse) -> Any:
    return providers.ModelResponse(
        text=row.text,
        tokens_in=row.tokens_in or 0,
        tokens_out=row.tokens_out or 0,
        latency_ms=round(row.latency_ms or 0),
        model=row.model,
    )


def recorded_lookup(*, team_id: int, keys: Iterable[str] = ()) -> Callable[[str], Any]:
    """The replay provider's lookup over the team's recordings: the keys named are read at once (a few
    queries), any other key (a judge's request, made from an answer) when it is asked for."""
    wanted = sorted(set(keys))
    found: dict[str, Any] = {}
    for start in range(0, len(wanted), 500):
        # By key alone, the unique index's first column; another team's recording is left out here.
        for row in RecordedResponse.objects.filter(key__in=wanted[start : start + 500]):
            if row.team_id == team_id:
                found[row.key] = _as_response(row)

    def lookup(key: str) -> Any:
        if key not in found:
            row = RecordedResponse.objects.filter(team_id=team_id, key=key).first()
            found[key] = _as_response(row) if row is not None else None
        return found[key]

    return lookup


def _recording(team_id: int, request: Any, response: Any, source: str) -> RecordedResponse:
    return RecordedResponse(
        team_id=team_id,
        key=request.key(),
        model=response.model or request.model,
        request={"model": request.model, "messages": request.messages, "parameters": request.parameters},
        text=response.text,
        tokens_in=response.tokens_in,
        tokens_out=response.tokens_out,
        latency_ms=response.latency_ms,
        source=source[:200],
    )


def _recordings_save(rows: list[RecordedResponse]) -> None:
    """Upsert by (team, key): the newest answer to a request is the one replayed."""
    if rows:
        unique = {(row.team_id, row.key): row for row in rows}
        RecordedResponse.objects.bulk_create(
            list(unique.values()),
            update_conflicts=True,
            unique_fields=["key", "team"],
            update_fields=[
                "model",
                "request",
                "text",
                "tokens_in",
                "tokens_out",
                "latency_ms",
                "source",
                "updated_at",
            ],
        )


class RecordError(ValueError):
    pass


def _recorded_from_dict(team: Team, row: dict[str, Any], source: str) -> RecordedResponse:
    if not isinstance(row, dict):
        raise RecordError("each line must be a JSON object")
    unknown = sorted(
        set(row) - {"model", "messages", "parameters", "text", "tokens_in", "tokens_out", "latency_ms"}
    )
    if unknown:
        raise RecordError(f"unknown field {unknown[0]!r}")
    model, messages, text = row.get("model"), row.get("messages"), row.get("text")
    if not isinstance(model, str) or not model:
        raise RecordError("'model' must be a non-empty text")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in messages
    ):
        raise RecordError("'messages' must be a list of {role, content}")
    parameters = row.get("parameters", {})
    if not isinstance(parameters, dict):
        raise RecordError("'parameters' must be a JSON object")
    if not isinstance(text, str):
        raise RecordError("'text' must be a text")
    numbers = {}
    for name in ("tokens_in", "tokens_out", "latency_ms"):
        value = row.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or value < 0):
            raise RecordError(f"{name!r} must be a non-negative number")
        numbers[name] = value
    request = providers.ModelRequest(
        model=model,
        messages=[{"role": m["role"], "content": m["content"]} for m in messages],
        parameters=parameters,
    )
    response = providers.ModelResponse(
        text=text,
        tokens_in=int(numbers["tokens_in"] or 0),
        tokens_out=int(numbers["tokens_out"] or 0),
        latency_ms=round(numbers["latency_ms"] or 0),
        model=model,
    )
    return _recording(team.pk, request, response, source)


def recorded_responses_import(
    *, team: Team, rows: Iterable[Any], source: str, actor: User | None = None, lines: list[int] | None = None
) -> int:
    """Load recorded responses (`model`, `messages`, `parameters`, `text`, optional token counts and latency;
    the key is computed as the replay provider computes it). All or nothing: a bad row raises RecordError
    naming its line (`lines[i]`, else its position), and nothing is written. Returns how many were stored
    (new or replaced)."""
    recordings = []
    for index, row in enumerate(rows):
        try:
            recordings.append(_recorded_from_dict(team, row, source))
        except RecordError as exc:
            raise RecordError(f"line {lines[index] if lines else index + 1}: {exc}") from None
    with transaction.atomic():
        _recordings_save(recordings)
        audit_event_record(
            actor=actor,
            action="evaluation.responses_imported",
            team=team,
            changes={"count": len(recordings), "source": source},
        )
    return len(recordings)


# --- carrying a run out (the worker) ------------------------------------------------------------------------


def judge_prompt_version(*, team_id: int) -> PromptVersion | None:
    """The team's judge: the version on `production` of the catalog prompt named EVALUATION_JUDGE_PROMPT."""
    row = (
        PromptLabel.objects.select_related("version__prompt")
        .filter(prompt__team_id=team_id, prompt__name=settings.EVALUATION_JUDGE_PROMPT, name=PRODUCTION_LABEL)
        .first()
    )
    return row.version if row else None


def _expectations(case: GoldenCase) -> metrics.Expectations:
    return metrics.Expectations(
        reference=case.reference,
        exact=case.exact,
        must_contain=tuple(case.must_contain or ()),
        must_not_contain=tuple(case.must_not_contain or ()),
        regex=case.regex,
        expect_json=case.expect_json,
        json_schema=case.json_schema,
        max_latency_ms=case.max_latency_ms,
        max_tokens=case.max_tokens,
        rubric=case.rubric,
        case_sensitive=case.case_sensitive,
    ).check()


def _conversation(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(
        f"{m['role']}: {m['content']}" for m in messages if m["role"] != "system"
    ) or "\n\n".join(m["content"] for m in messages)


@dataclass
class _Pending:
    case: GoldenCase
    rendered: list[dict[str, str]]
    request: Any  # ModelRequest
    response: Any = None  # ModelResponse
    error: str = ""
    retryable: bool = False
    attempts: int = 0
    judge_request: Any = None
    judge: metrics.JudgeVerdict | None = None
    judge_error: str | None = None
    similarity: float | None = None
    judge_response: Any = None  # a live judge answer, to record


def _provider_for(run: EvaluationRun, keys: Iterable[str]) -> Any:
    if run.provider == EvaluationProvider.REPLAY:
        return ReplayProvider(recorded_lookup(team_id=run.team_id, keys=keys))
    return providers.get_provider(run.provider)


def _call_all(provider: Any, requests: list[Any]) -> list[Any]:
    """Send the requests (the provider's default concurrency, rate limit and retries): their outcomes, in
    order."""
    return providers.run_requests(provider, requests) if requests else []


def judge_request(
    judge: PromptVersion, *, case: GoldenCase, rendered: list[dict[str, str]], output: str
) -> Any:
    """The request that asks the judge prompt for its verdict on one answer (raises VariablesMismatch or
    TemplateProblem when the judge prompt does not render with rubric, input, reference and output)."""
    variables = {
        "rubric": case.rubric,
        "input": _conversation(rendered),
        "reference": case.reference,
        "output": output,
    }
    expected = list(judge.variables)
    messages = render_messages(
        judge.messages, {k: v for k, v in variables.items() if k in expected}, expected=expected
    )
    return providers.ModelRequest(model=judge.model, messages=messages, parameters=dict(judge.parameters))


def _score(pending: _Pending, run: EvaluationRun, book: PriceBook, at: Any) -> CaseResult:
    result = CaseResult(
        run=run,
        case=pending.case,
        request_key=pending.request.key() if pending.request is not None else "",
        rendered=pending.rendered,
        attempts=pending.attempts,
    )
    if pending.response is None:
        result.error = pending.error or "no answer"
        return result
    response = pending.response
    result.output = response.text
    result.tokens_in = response.tokens_in
    result.tokens_out = response.tokens_out
    result.latency_ms = response.latency_ms
    result.cost = book.cost(run.model, at, response.tokens_in, response.tokens_out)
    try:
        expect = _expectations(pending.case)
    except metrics.ExpectationError as exc:
        result.error = f"invalid expectation: {exc}"
        return result
    score = metrics.score_case(
        expect,
        response.text,
        latency_ms=response.latency_ms,
        tokens_out=response.tokens_out,
        embedding_similarity=pending.similarity,
        judge=pending.judge,
        judge_error=pending.judge_error,
    )
    result.metrics = score.metrics
    result.failures = score.failures
    result.passed = score.passed
    # The judge's own message ("judge answer malformed: …") rather than the metrics' generic prefix.
    result.error = pending.judge_error or score.error or ""
    if pending.judge is not None:
        result.judge_score = pending.judge.score
        result.judge_reason = pending.judge.reason
    return result


def case_messages(version: PromptVersion, case: GoldenCase) -> list[dict[str, str]]:
    """A case rendered by a version. A golden set outlives the versions it tests, so a case may carry
    variables an older version does not use: those are left out. A variable the version needs and the case
    lacks is still an error (VariablesMismatch)."""
    expected = list(version.variables)
    variables = {name: value for name, value in case.variables.items() if name in expected}
    return render_messages(version.messages, variables, expected=expected)


def _render(run: EvaluationRun, case: GoldenCase) -> _Pending:
    version = run.prompt_version
    try:
        rendered = case_messages(version, case)
    except (VariablesMismatch, TemplateProblem) as exc:
        return _Pending(case=case, rendered=[], request=None, error=f"render: {exc}")
    request = providers.ModelRequest(model=run.model, messages=rendered, parameters=dict(run.parameters))
    return _Pending(case=case, rendered=rendered, request=request)


def _answer(pending: _Pending, outcome: Any) -> None:
    pending.attempts = outcome.attempts
    if outcome.response is not None:
        pending.response = outcome.response
    else:
        error = outcome.error
        pending.error = error.message if error is not None else "no answer"
        pending.retryable = bool(error is not None and error.retryable)


def _judge_and_embed(
    *, provider: Any, batch: list[_Pending], judge: PromptVersion | None, embeddings: dict[str, bool]
) -> None:
    """The judge's verdict for the answered cases that have a rubric, and the embedding similarity of
    answers to references when the provider has an embedding model (asked once per run)."""
    answered = [p for p in batch if p.response is not None]
    to_judge = [p for p in answered if p.case.rubric]
    if to_judge and judge is None:
        for pending in to_judge:
            pending.judge_error = (
                f"judge: no judge prompt: put a version of the catalog prompt {settings.EVALUATION_JUDGE_PROMPT!r} "
                "on production"
            )
    elif to_judge and judge is not None:
        for pending in to_judge:
            try:
                pending.judge_request = judge_request(
                    judge, case=pending.case, rendered=pending.rendered, output=pending.response.text
                )
            except (VariablesMismatch, TemplateProblem) as exc:
                pending.judge_error = f"judge: the judge prompt does not render: {exc}"
        judged = [p for p in to_judge if p.judge_request is not None]
        for pending, outcome in zip(
            judged, _call_all(provider, [p.judge_request for p in judged]), strict=True
        ):
            if outcome.response is None:
                reason = outcome.error.message if outcome.error is not None else "no answer"
                pending.judge_error = f"judge: the call failed: {reason}"
                continue
            if not provider.is_replay:
                pending.judge_response = outcome.response
            try:
                pending.judge = metrics.parse_judge_answer(outcome.response.text)
            except metrics.JudgeAnswerError as exc:
                pending.judge_error = f"judge answer malformed: {exc.message}"
    with_reference = [p for p in answered if p.case.reference]
    if with_reference and embeddings.get("enabled", True):
        texts = [p.response.text for p in with_reference] + [p.case.reference for p in with_reference]
        try:
            vectors = provider.embed(texts)
        except providers.NotConfigured:
            embeddings["enabled"] = False
        except providers.ProviderError:
            pass  # this batch goes without similarity; its checks are unaffected
        else:
            n = len(with_reference)
            for i, pending in enumerate(with_reference):
                pending.similarity = metrics.cosine_similarity(vectors[i], vectors[n + i])


def _write_batch(run: EvaluationRun, batch: list[_Pending], results: list[CaseResult], live: bool) -> None:
    with transaction.atomic():
        CaseResult.objects.bulk_create(results, ignore_conflicts=True)
        if live:
            source = f"run {run.pk}"
            rows = [
                _recording(run.team_id, p.request, p.response, source)
                for p in batch
                if p.response is not None
            ]
            rows += [
                _recording(run.team_id, p.judge_request, p.judge_response, f"{source} (judge)")
                for p in batch
                if p.judge_response is not None
            ]
            _recordings_save(rows)
        done = CaseResult.objects.filter(run=run).count()
        EvaluationRun.objects.filter(pk=run.pk).update(cases_done=done, updated_at=timezone.now())


def _summary_rows(run: EvaluationRun) -> list[metrics.CaseRow]:
    return [
        {
            "passed": row.passed,
            "errored": bool(row.error),
            "metrics": row.metrics,
            "latency_ms": row.latency_ms,
            "cost": row.cost,
            "tokens_in": row.tokens_in,
            "tokens_out": row.tokens_out,
        }
        for row in CaseResult.objects.filter(run=run).only(
            "passed", "error", "metrics", "latency_ms", "cost", "tokens_in", "tokens_out"
        )
    ]


CONTENT_CHANGED = "The version's content changed after the run started: start a new run."


def _content_changed(run: EvaluationRun) -> bool:
    """Whether a prompt run's version was edited (a draft) since the run took its subject hash: its results
    would then be the edited content's, not what the hash names."""
    if run.adapter_version_id is not None:
        return False
    version = PromptVersion.objects.only("messages").get(pk=run.prompt_version_id)
    return prompt_run_subject_hash(version, model=run.model, parameters=run.parameters) != run.subject_hash


def _finish(run_id: int, *, status: str, error: str = "") -> EvaluationRun:
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run_id)
        if run.is_finished:
            return run
        if status == RunStatus.COMPLETED and _content_changed(run):
            status, error = RunStatus.FAILED, CONTENT_CHANGED
        run.status = status
        run.error = error[:5000]
        run.finished_at = timezone.now()
        run.lease_until = None
        run.cases_done = CaseResult.objects.filter(run=run).count()
        if status == RunStatus.COMPLETED:
            run.summary = metrics.aggregate(_summary_rows(run))
        run.save(
            update_fields=[
                "status",
                "error",
                "finished_at",
                "lease_until",
                "cases_done",
                "summary",
                "updated_at",
            ]
        )

        run_outcome_record(run=run)
        audit_event_record(
            actor=None,
            action="evaluation.run_completed" if status == RunStatus.COMPLETED else "evaluation.run_failed",
            target=run,
            changes={
                "status": status,
                "pass_rate": run.summary.get("pass_rate"),
                "passed": run.passed,
                "cases": run.cases_done,
                **({"error": run.error} if run.error else {}),
            },
        )
    return run


class _ProviderDown(Exception):
    def __init__(self, message: str):
        self.message = message


class _LeaseLost(Exception):
    """Another worker took the run over (this one was silent past its lease): stop without writing more."""


class _Lease:
    """This worker's hold on a run: renewed (compare-and-set on the value it last wrote) at most every
    LEASE_RENEW_EVERY from the results' callback and after every batch."""

    def __init__(self, run_id: int, until: Any):
        self.run_id = run_id
        self.until = until
        self.renewed_at = timezone.now()

    def renew(self, *, force: bool = False) -> None:
        now = timezone.now()
        if not force and now - self.renewed_at < LEASE_RENEW_EVERY:
            return
        until = now + LEASE_DURATION
        held = EvaluationRun.objects.filter(
            pk=self.run_id, status=RunStatus.RUNNING, lease_until=self.until
        ).update(lease_until=until, updated_at=now)
        if not held:
            raise _LeaseLost
        self.until, self.renewed_at = until, now


def _take(run_id: int) -> tuple[EvaluationRun | None, _Lease | None]:
    """Lock the run and take its lease: (the run, None) when there is nothing to do (gone, finished, or
    another worker holds an unexpired lease)."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.is_finished:
            return run, None
        now = timezone.now()
        if run.status == RunStatus.RUNNING and run.lease_until is not None and run.lease_until > now:
            return run, None  # another worker is carrying it out
        if run.status == RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
            run.started_at = now
        run.lease_until = now + LEASE_DURATION
        run.save(update_fields=["status", "started_at", "lease_until", "updated_at"])
        return run, _Lease(run.pk, run.lease_until)


def evaluation_run_execute(*, run_id: int, provider: Any = None) -> EvaluationRun | None:
    """The worker's service: carry out a queued (or interrupted) run. Idempotent and retry-safe: cases
    that have a result are skipped, results are written every BATCH_SIZE answers in their own transaction,
    and a run whose lease another worker holds is left to it. A prompt run whose version (a draft) was edited
    since it started fails rather than score the edited content under the old hash.
    `provider` replaces the run's own (tests, the benchmark)."""
    taken, lease = _take(run_id)
    if lease is None:
        return taken
    if _content_changed(taken):  # type: ignore[arg-type]
        return _finish(run_id, status=RunStatus.FAILED, error=CONTENT_CHANGED)
    run = EvaluationRun.objects.select_related("prompt_version__prompt", "golden_set_version").get(pk=run_id)
    try:
        return _carry_out(run, provider, lease)
    except _LeaseLost:
        return EvaluationRun.objects.get(pk=run_id)


def _carry_out(run: EvaluationRun, provider: Any, lease: _Lease) -> EvaluationRun:
    done = set(CaseResult.objects.filter(run=run).values_list("case_id", flat=True))
    cases = list(run.golden_set_version.cases.order_by("position"))
    todo = [_render(run, case) for case in cases if case.pk not in done]
    judge = None
    if any(case.rubric for case in cases):
        judge = judge_prompt_version(team_id=run.team_id)
        if judge is not None and run.judge_prompt_version_id != judge.pk:
            EvaluationRun.objects.filter(pk=run.pk).update(judge_prompt_version=judge)
            run.judge_prompt_version = judge
    if provider is None:
        try:
            provider = _provider_for(run, [p.request.key() for p in todo if p.request is not None])
        except (providers.ProviderError, ImproperlyConfigured) as exc:
            return _finish(run.pk, status=RunStatus.FAILED, error=f"provider: {exc}")
    book = PriceBook([run.model])
    at = run.started_at or timezone.now()
    embeddings: dict[str, bool] = {}
    state = {"answered": bool(done)}
    live = not provider.is_replay

    def flush(batch: list[_Pending]) -> None:
        if not batch:
            return
        answered = [p for p in batch if p.response is not None]
        sent = [p for p in batch if p.request is not None]
        if not state["answered"] and sent and not answered and all(p.retryable for p in sent):
            # Nothing has answered yet and every call failed for a passing reason: the provider is down.
            raise _ProviderDown(sent[0].error)
        state["answered"] = state["answered"] or bool(answered)
        _judge_and_embed(provider=provider, batch=batch, judge=judge, embeddings=embeddings)
        lease.renew(force=True)
        _write_batch(run, batch, [_score(p, run, book, at) for p in batch], live=live)
        batch.clear()

    buffer: list[_Pending] = [
        p for p in todo if p.request is None
    ]  # render errors: written with the first batch
    sendable = [p for p in todo if p.request is not None]

    def on_result(outcome: Any) -> None:
        lease.renew()
        pending = sendable[outcome.index]
        _answer(pending, outcome)
        buffer.append(pending)
        if len(buffer) >= BATCH_SIZE:
            flush(buffer)

    try:
        if sendable:
            providers.run_requests(provider, [p.request for p in sendable], on_result=on_result)
        flush(buffer)
    except _ProviderDown as exc:
        return _finish(run.pk, status=RunStatus.FAILED, error=f"provider unavailable: {exc.message}")
    return _finish(run.pk, status=RunStatus.COMPLETED)


def evaluation_runs_stalled() -> list[int]:
    """Runs whose task was lost: queued for over QUEUED_RESEND_AFTER, or running with an expired lease (or,
    from before leases, silent for STALE_AFTER)."""
    now = timezone.now()
    return list(
        EvaluationRun.objects.filter(
            Q(status=RunStatus.QUEUED, created_at__lt=now - QUEUED_RESEND_AFTER)
            | Q(status=RunStatus.RUNNING, lease_until__lt=now)
            | Q(status=RunStatus.RUNNING, lease_until__isnull=True, updated_at__lt=now - STALE_AFTER)
        )
        .order_by("pk")
        .values_list("pk", flat=True)[:500]
    )


# --- reads -------------------------------------------------------------------------------------------------


def evaluation_run_list(*, user: User) -> QuerySet[EvaluationRun]:
    return EvaluationRun.objects.filter(team_id__in=user_team_ids(user, RUN_READERS)).select_related(
        "team",
        "prompt_version__prompt__team",
        "golden_set_version__golden_set",
        "adapter_version__adapter",
        "requested_by",
    )


def evaluation_runs_for_version(*, user: User, version: PromptVersion) -> QuerySet[EvaluationRun]:
    return evaluation_run_list(user=user).filter(prompt_version=version)


def evaluation_runs_for_prompt(*, user: User, prompt: Prompt) -> QuerySet[EvaluationRun]:
    """The runs' history on the prompt page, newest first."""
    return evaluation_run_list(user=user).filter(prompt_version__prompt=prompt)


def evaluation_runs_for_adapter_version(
    *, user: User, adapter_version: AdapterVersion
) -> QuerySet[EvaluationRun]:
    return evaluation_run_list(user=user).filter(adapter_version=adapter_version)


def evaluation_run_get(*, user: User, run_id: int) -> EvaluationRun:
    run = (
        evaluation_run_list(user=user)
        .select_related("baseline_run", "judge_prompt_version__prompt")
        .filter(pk=run_id)
        .first()
    )
    if run is None:
        raise NotFound(f"No evaluation run {run_id}.")
    return run


def evaluation_run_results(*, run: EvaluationRun, only: str = "") -> QuerySet[CaseResult]:
    """Per-case results with their case, in the golden set's order; `only`: failed | errors."""
    qs = CaseResult.objects.filter(run=run).select_related("case")
    if only == "failed":
        qs = qs.filter(passed=False)
    elif only == "errors":
        qs = qs.exclude(error="")
    return qs.order_by("case__position")


def user_can_start_runs(*, user: User, team_id: int) -> bool:
    return user_has_role(user, team_id, RUN_STARTERS)


@dataclass
class RegressionRow:
    """A case's result in the candidate and in the baseline; the word diff of their outputs is computed when
    first shown (the regression page shows one page of rows)."""

    case: GoldenCase
    candidate: CaseResult | None
    baseline: CaseResult | None

    @property
    def kind(self) -> str:
        """regressed | improved | same | changed: what the candidate did to the case."""
        if self.candidate is None or self.baseline is None:
            return "same"
        if self.baseline.passed and not self.candidate.passed:
            return "regressed"
        if self.candidate.passed and not self.baseline.passed:
            return "improved"
        return "changed" if self.candidate.output != self.baseline.output else "same"

    @cached_property
    def _diff(self) -> tuple[SafeString, SafeString]:
        return _word_diff(
            self.baseline.output if self.baseline else "", self.candidate.output if self.candidate else ""
        )

    @property
    def baseline_html(self) -> SafeString:
        return self._diff[0]

    @property
    def candidate_html(self) -> SafeString:
        return self._diff[1]


def evaluation_run_regression(*, run: EvaluationRun) -> list[RegressionRow]:
    """The candidate's result beside the baseline run's for every case, regressions first; each row word-diffs
    the outputs (baseline on the left) only when shown."""
    candidate = {r.case_id: r for r in CaseResult.objects.filter(run=run)}
    baseline = (
        {r.case_id: r for r in CaseResult.objects.filter(run_id=run.baseline_run_id)}
        if run.baseline_run_id
        else {}
    )
    rows = [
        RegressionRow(case=case, candidate=candidate.get(case.pk), baseline=baseline.get(case.pk))
        for case in run.golden_set_version.cases.order_by("position")
    ]
    order = {"regressed": 0, "improved": 1, "changed": 2, "same": 3}
    return sorted(rows, key=lambda row: (order[row.kind], row.case.position))
