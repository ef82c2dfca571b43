"""Tuning requests: filed by engineers, approved through the engine, dispatched to the configured job
backend by a task, followed by the beat poller, and registered as a new adapter version on success.

Every status change goes through `_move`, which refuses the moves TUNING_TRANSITIONS does not list.
"""

from __future__ import annotations

import logging
import math
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import REGISTRY_WRITERS
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.cloud.jobs.base import TERMINAL_STATES, BackendError, JobState, JobStatus, TrainingSpec
from apps.common.exceptions import Conflict, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.costs.models import Price, PriceKind
from apps.registry.models import Adapter, TuningMethod
from apps.registry.services import DATASET_SCHEMES, adapter_version_register
from apps.tuning.datasets import console_dataset_check, console_dataset_file, is_console_dataset
from apps.tuning.models import TUNING_TRANSITIONS, TuningRequest, TuningStatus
from apps.workflows.models import ApprovalRequest, Decision, SubjectKind
from apps.workflows.registry import SubjectHandler, subject_kind_register
from apps.workflows.services import approval_request_open, approval_request_withdraw, approval_subject_request

logger = logging.getLogger(__name__)

LORA_HYPERPARAMETERS = {
    "rank": (int, 1, 512),
    "alpha": (float, 0.0001, 4096),
    "dropout": (float, 0.0, 0.99),
    "epochs": (int, 1, 100),
    "learning_rate": (float, 1e-8, 1.0),
    "max_steps": (int, 1, 1_000_000),
    "batch_size": (int, 1, 1024),
    "seed": (int, 0, 2**31 - 1),
}
MANAGED_HYPERPARAMETERS = {
    "epochs": (int, 1, 100),
    "learning_rate_multiplier": (float, 0.0001, 100.0),
    "adapter_size": (int, 1, 32),
}
DEFAULT_LORA = {"rank": 8, "alpha": 16, "dropout": 0.05, "epochs": 3, "learning_rate": 0.0002}
TRAINING_SCHEMES = DATASET_SCHEMES
JOB_STATUS_FOR_STATE = {
    JobState.QUEUED: TuningStatus.QUEUED,
    JobState.PENDING: TuningStatus.QUEUED,
    JobState.RUNNING: TuningStatus.RUNNING,
    JobState.CANCELLING: TuningStatus.RUNNING,
    JobState.PAUSED: TuningStatus.RUNNING,
    JobState.UPDATING: TuningStatus.RUNNING,
    JobState.SUCCEEDED: TuningStatus.SUCCEEDED,
    JobState.FAILED: TuningStatus.FAILED,
    JobState.EXPIRED: TuningStatus.FAILED,
    JobState.PARTIALLY_SUCCEEDED: TuningStatus.FAILED,
    JobState.CANCELLED: TuningStatus.CANCELLED,
}


def _require(actor: User, team_id: int, what: str) -> None:
    if not user_has_role(actor, team_id, REGISTRY_WRITERS):
        raise PermissionDenied(f"You cannot {what} in this team.")


def _move(request: TuningRequest, to: str) -> str:
    """Change the status if the lifecycle allows it; returns the previous status."""
    before = request.status
    if to not in TUNING_TRANSITIONS[before]:
        raise Conflict(
            f"A tuning request that is {request.get_status_display().lower()} cannot become {TuningStatus(to).label.lower()}.",
            code="invalid_transition",
            details={"from": before, "to": to},
        )
    request.status = to
    return before


# Validation


def _uri(value: str, field: str, *, required: bool) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise Unprocessable(
                f"{field}: give the dataset's URI.", code="invalid_" + field, details={"field": field}
            )
        return ""
    # A path without a scheme is a file on the worker's machine, relative to the project (the local runner).
    relative = "://" not in value and not value.startswith(("/", ".."))
    if (
        len(value) > 1000
        or any(c.isspace() for c in value)
        or not (value.startswith(TRAINING_SCHEMES) or relative)
    ):
        raise Unprocessable(
            f"{field}: a JSONL dataset at {', '.join(TRAINING_SCHEMES)}… or a path in the project for the local "
            "runner (at most 1,000 characters, no spaces).",
            code="invalid_" + field,
            details={"field": field},
        )
    return value


def _hyperparameters(method: str, given: Any) -> dict[str, Any]:
    if not isinstance(given, dict):
        raise Unprocessable("hyperparameters: must be an object.", code="invalid_hyperparameters")
    allowed = LORA_HYPERPARAMETERS if method == TuningMethod.LORA else MANAGED_HYPERPARAMETERS
    values = {**(DEFAULT_LORA if method == TuningMethod.LORA else {}), **given}
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if key not in allowed:
            raise Unprocessable(
                f"hyperparameters.{key}: not a parameter of {TuningMethod(method).label}; use {', '.join(allowed)}.",
                code="invalid_hyperparameters",
                details={"parameter": key},
            )
        kind, low, high = allowed[key]
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and kind is int:
            ok = float(value).is_integer()
        if not ok or not low <= value <= high:
            what = "a whole number" if kind is int else "a number"
            raise Unprocessable(
                f"hyperparameters.{key}: {what} from {low} to {high}.",
                code="invalid_hyperparameters",
                details={"parameter": key},
            )
        clean[key] = int(value) if kind is int else float(value)
    return clean


def _hardware(
    method: str, machine_type: str, accelerator_type: str, accelerator_count: Any
) -> tuple[str, str, int]:
    machine_type, accelerator_type = (machine_type or "").strip(), (accelerator_type or "").strip().upper()
    if (
        isinstance(accelerator_count, bool)
        or not isinstance(accelerator_count, int)
        or not 0 <= accelerator_count <= 16
    ):
        raise Unprocessable("accelerator_count: 0 to 16.", code="invalid_accelerator")
    if method == TuningMethod.VERTEX_SUPERVISED:
        if machine_type or accelerator_type or accelerator_count:
            raise Unprocessable(
                "Vertex managed tuning chooses its own hardware: leave machine and accelerator empty.",
                code="invalid_accelerator",
            )
        return "", "", 0
    if bool(accelerator_type) != bool(accelerator_count):
        raise Unprocessable(
            "accelerator_type and accelerator_count go together (none for a CPU job).",
            code="invalid_accelerator",
        )
    if len(machine_type) > 64 or len(accelerator_type) > 64:
        raise Unprocessable(
            "machine_type and accelerator_type: at most 64 characters.", code="invalid_accelerator"
        )
    return machine_type, accelerator_type, accelerator_count


def _hours(value: Any) -> Decimal:
    try:
        hours = Decimal(str(value))
    except ArithmeticError:
        hours = Decimal(-1)
    if not hours.is_finite() or not Decimal("0.01") <= hours <= Decimal("10000"):
        raise Unprocessable("estimated_hours: from 0.01 to 10,000 hours.", code="invalid_estimated_hours")
    return hours.quantize(Decimal("0.01"))


def accelerator_price(accelerator_type: str, at: Any = None) -> Price | None:
    """The hourly price of one accelerator in effect at `at` (now by default), from the price table."""
    at = at or timezone.now()
    return (
        Price.objects.filter(kind=PriceKind.ACCELERATOR_HOUR, key=accelerator_type, effective_from__lte=at)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=at))
        .order_by("-effective_from")
        .first()
    )


def cost_estimate(
    *, accelerator_type: str, accelerator_count: int, hours: Decimal
) -> tuple[Decimal | None, Decimal | None]:
    """(hourly price of one accelerator, estimated cost) — None when there is no accelerator or no price."""
    if not accelerator_type or not accelerator_count:
        return None, None
    price = accelerator_price(accelerator_type)
    if price is None:
        return None, None
    cost = (price.hourly * accelerator_count * hours).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return price.hourly, cost


# Requests


@transaction.atomic
def tuning_request_create(
    *,
    actor: User,
    adapter: Adapter,
    train_dataset_uri: str,
    justification: str,
    estimated_hours: Any,
    validation_dataset_uri: str = "",
    hyperparameters: dict[str, Any] | None = None,
    machine_type: str = "",
    accelerator_type: str = "",
    accelerator_count: int = 0,
) -> TuningRequest:
    _require(actor, adapter.team_id, "request tuning jobs")
    adapter = Adapter.objects.select_related("team", "base_model").get(pk=adapter.pk)
    if not (justification or "").strip():
        raise Unprocessable("justification: say why this tuning is needed.", code="invalid_justification")
    machine, accelerator, count = _hardware(adapter.method, machine_type, accelerator_type, accelerator_count)
    hours = _hours(estimated_hours)
    hourly, cost = cost_estimate(accelerator_type=accelerator, accelerator_count=count, hours=hours)
    train = _uri(train_dataset_uri, "train_dataset_uri", required=True)
    validation = _uri(validation_dataset_uri, "validation_dataset_uri", required=False)
    for field, uri in (("train_dataset_uri", train), ("validation_dataset_uri", validation)):
        if is_console_dataset(uri):
            console_dataset_check(uri=uri, team_id=adapter.team_id, field=field)
    request = TuningRequest.objects.create(
        team=adapter.team,
        adapter=adapter,
        train_dataset_uri=train,
        validation_dataset_uri=validation,
        hyperparameters=_hyperparameters(adapter.method, hyperparameters or {}),
        machine_type=machine,
        accelerator_type=accelerator,
        accelerator_count=count,
        estimated_hours=hours,
        hourly_price=hourly,
        estimated_cost=cost,
        currency=settings.COSTS_CURRENCY,
        justification=justification.strip()[:4000],
        requested_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="tuning.request_created",
        target=request,
        changes={
            "adapter": str(adapter),
            "method": adapter.method,
            "train_dataset_uri": request.train_dataset_uri,
            "hyperparameters": request.hyperparameters,
            "accelerator": f"{count}× {accelerator}" if count else "",
            "estimated_cost": str(cost) if cost is not None else None,
        },
    )
    return request


@transaction.atomic
def tuning_request_submit(*, actor: User, request: TuningRequest) -> ApprovalRequest:
    request = (
        TuningRequest.objects.select_for_update(of=("self",))
        .select_related("adapter__team", "adapter__base_model")
        .get(pk=request.pk)
    )
    if request.requested_by_id != actor.pk:
        _require(actor, request.team_id, "submit tuning requests")
    # The estimate is taken again at submission: the price table may have changed since the draft.
    hourly, cost = cost_estimate(
        accelerator_type=request.accelerator_type,
        accelerator_count=request.accelerator_count,
        hours=request.estimated_hours,
    )
    _move(request, TuningStatus.PENDING_APPROVAL)
    request.hourly_price, request.estimated_cost = hourly, cost
    request.submitted_at = timezone.now()
    request.save(update_fields=["status", "hourly_price", "estimated_cost", "submitted_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="tuning.request_submitted",
        target=request,
        changes={"estimated_cost": str(cost) if cost is not None else None, "currency": request.currency},
    )
    hardware = (
        f", {request.accelerator_count}× {request.accelerator_type}" if request.accelerator_count else ""
    )
    price = f", ~{cost} {request.currency}" if cost is not None else ""
    approval = approval_request_open(
        subject=request,
        subject_kind=SubjectKind.TUNING_REQUEST,
        team=request.team,
        requested_by=request.requested_by,
        summary=f"Tune {request.adapter} on {request.adapter.base_model.model_id}{hardware}{price}",
        cost=cost,
    )
    from workers.workflows import notify_reviewers

    enqueue_on_commit(notify_reviewers, approval.pk)
    return approval


@transaction.atomic
def tuning_request_cancel(*, actor: User, request: TuningRequest) -> TuningRequest:
    """The requester (or an administrator or engineer of the team) stops a request: a draft or an approved
    request that has not been dispatched ends at once; one waiting for approval is withdrawn; a queued or
    running job is asked to stop, and the poller records it cancelled when the provider says so."""
    request = TuningRequest.objects.select_for_update().get(pk=request.pk)
    if request.requested_by_id != actor.pk:
        _require(actor, request.team_id, "cancel tuning requests")
    if request.status == TuningStatus.PENDING_APPROVAL:
        approval = approval_subject_request(subject=request)
        if approval is not None and approval.requested_by_id == actor.pk:
            approval_request_withdraw(request_id=approval.pk, actor=actor)  # → draft, through the handler
        else:
            raise Conflict(
                "Only the requester withdraws a request waiting for approval.", code="invalid_transition"
            )
        request.refresh_from_db()
    if request.status in (TuningStatus.QUEUED, TuningStatus.RUNNING):
        if request.cancel_requested_at is None:
            request.cancel_requested_at = timezone.now()
            request.save(update_fields=["cancel_requested_at", "updated_at"])
            audit_event_record(
                actor=actor,
                action="tuning.cancel_requested",
                target=request,
                changes={"job": request.job_name},
            )
            from workers.tuning import cancel_job

            enqueue_on_commit(cancel_job, request.pk)
        return request
    if request.status == TuningStatus.APPROVED and request.job_key:
        raise Conflict(
            "The job is being submitted right now: cancel it again in a few seconds.",
            code="dispatch_in_progress",
        )
    before = _move(request, TuningStatus.CANCELLED)
    request.ended_at = timezone.now()
    request.save(update_fields=["status", "ended_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="tuning.request_cancelled",
        target=request,
        changes={"status": {"from": before, "to": "cancelled"}},
    )
    return request


# The approval engine's callbacks

_OUTCOME = {
    "approved": TuningStatus.APPROVED,
    "rejected": TuningStatus.REJECTED,
    "changes_requested": TuningStatus.DRAFT,
    "withdrawn": TuningStatus.DRAFT,
}


def _request_close(*, subject: TuningRequest, request: ApprovalRequest, actor: User, comment: str) -> None:
    tuning = TuningRequest.objects.select_for_update().get(pk=subject.pk)
    before = _move(tuning, _OUTCOME[request.status])
    tuning.decided_at = timezone.now() if tuning.status != TuningStatus.DRAFT else None
    tuning.save(update_fields=["status", "decided_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="tuning.request_decided",
        target=tuning,
        team=request.team,
        changes={
            "status": {"from": before, "to": tuning.status},
            "approval_request": request.pk,
            "comment": comment,
        },
    )
    if tuning.status == TuningStatus.APPROVED:
        from workers.tuning import dispatch_job

        enqueue_on_commit(dispatch_job, tuning.pk)


def register_subjects() -> None:
    subject_kind_register(
        SubjectKind.TUNING_REQUEST,
        SubjectHandler(
            model=TuningRequest,
            on_approved=_request_close,
            on_rejected=_request_close,
            on_changes_requested=_request_close,
            on_withdrawn=_request_close,
        ),
    )


# Jobs


def job_key(request: TuningRequest) -> str:
    return f"atalaya-tuning-{request.pk}"


def _job_data(uri: str) -> str:
    """What the job reads: a dataset exported from annotations is written out as a file first."""
    return console_dataset_file(uri) if uri and is_console_dataset(uri) else uri


def training_spec(request: TuningRequest) -> TrainingSpec:
    adapter = request.adapter
    return TrainingSpec(
        key=request.job_key,
        display_name=f"{adapter.team.slug}-{adapter.name}-tuning-{request.pk}"[:128],
        method=adapter.method,
        base_model=adapter.base_model.model_id,
        train_uri=_job_data(request.train_dataset_uri),
        validation_uri=_job_data(request.validation_dataset_uri),
        hyperparameters=dict(request.hyperparameters),
        machine_type=request.machine_type,
        accelerator_type=request.accelerator_type,
        accelerator_count=request.accelerator_count,
        output_uri=f"{settings.TUNING_ARTIFACTS_URI.rstrip('/')}/{request.job_key}"
        if settings.TUNING_ARTIFACTS_URI
        else "",
        labels={"atalaya-team": adapter.team.slug, "atalaya-adapter": adapter.name[:63]},
    )


def tuning_job_dispatch(*, request_id: int, backend: Any) -> TuningRequest | None:
    """Submit the approved request's job exactly once. The key is committed before the provider is called;
    a retry (or a second run of this task, or a run after the worker died mid-call) sends the same key, and
    the backend answers with the job that key already started."""
    with transaction.atomic():
        request = TuningRequest.objects.select_for_update().filter(pk=request_id).first()
        if request is None or request.status != TuningStatus.APPROVED:
            return request  # already dispatched, cancelled, or gone
        if not request.job_key:
            request.job_key = job_key(request)
            request.job_backend = backend.name
            request.save(update_fields=["job_key", "job_backend", "updated_at"])
    request = TuningRequest.objects.select_related("adapter__team", "adapter__base_model").get(pk=request_id)
    try:
        status = backend.submit(training_spec(request))
    except BackendError as exc:
        with transaction.atomic():
            request = TuningRequest.objects.select_for_update().get(pk=request_id)
            if request.status == TuningStatus.APPROVED:
                _move(request, TuningStatus.FAILED)
                request.job_error = str(exc)[:4000]
                request.ended_at = timezone.now()
                request.save(update_fields=["status", "job_error", "ended_at", "updated_at"])
                audit_event_record(
                    actor=None,
                    action="tuning.job_failed",
                    target=request,
                    changes={"error": request.job_error},
                )
        return request
    with transaction.atomic():
        request = TuningRequest.objects.select_for_update().get(pk=request_id)
        if request.status != TuningStatus.APPROVED:
            return request
        request.job_name = status.name
        request.dispatched_at = timezone.now()
        request.save(update_fields=["job_name", "dispatched_at", "updated_at"])
        audit_event_record(
            actor=None,
            action="tuning.job_submitted",
            target=request,
            changes={"backend": request.job_backend, "job": status.name, "key": request.job_key},
        )
        _apply_status(request, status)
    return request


def _as_uri(reference: str) -> str:
    """A dataset as the registry records it: a path relative to the project becomes its file:// URI."""
    if reference and "://" not in reference and not reference.startswith("/"):
        return (Path(settings.BASE_DIR) / reference).resolve().as_uri()
    return reference


def _approvers(request: TuningRequest) -> list[str]:
    approval = approval_subject_request(subject=request)
    if approval is None:
        return []
    return sorted(
        approval.decisions.filter(decision=Decision.APPROVE).values_list("reviewer__username", flat=True)
    )


def _apply_status(request: TuningRequest, status: JobStatus) -> None:
    """Record what the provider says about the job (inside the caller's transaction, row locked)."""
    fields = ["job_state", "progress", "log_tail", "updated_at"]
    request.job_state = int(status.state)
    request.progress = status.progress if status.progress is not None else request.progress
    request.log_tail = status.log_tail[-4000:] if status.log_tail else request.log_tail
    if status.started_at and not request.started_at:
        request.started_at = status.started_at
        fields.append("started_at")
    target = JOB_STATUS_FOR_STATE[status.state]
    if target == request.status:
        request.save(update_fields=fields)
        return
    before = _move(request, target)
    fields.append("status")
    if status.state in TERMINAL_STATES:
        request.ended_at = status.ended_at or timezone.now()
        fields.append("ended_at")
        if status.state != JobState.SUCCEEDED and status.state != JobState.CANCELLED:
            request.job_error = (status.error or f"The job ended {status.state.name.lower()}.")[:4000]
            fields.append("job_error")
    if status.state == JobState.SUCCEEDED:
        request.job_output_uri = status.output_uri
        fields.append("job_output_uri")
        request.result_version = adapter_version_register(
            actor=request.requested_by,
            adapter=request.adapter,
            artifact_uri=status.output_uri,
            metrics=dict(status.metrics),
            hyperparameters=request.hyperparameters,
            dataset_uri=_as_uri(request.train_dataset_uri),
            validation_dataset_uri=_as_uri(request.validation_dataset_uri),
            lineage={
                "dataset": request.train_dataset_uri,
                "tuning_request": request.pk,
                "job": request.job_name,
                "backend": request.job_backend,
                "requested_by": request.requested_by.username,
                "approved_by": ", ".join(_approvers(request)),
            },
            notes=f"Trained by tuning request #{request.pk}.",
            check_role=False,
        )
        fields.append("result_version")
    request.save(update_fields=fields)
    audit_event_record(
        actor=None,
        action="tuning.job_state_changed",
        target=request,
        changes={
            "status": {"from": before, "to": request.status},
            "job_state": status.state.name,
            **({"error": request.job_error} if request.job_error and status.state in TERMINAL_STATES else {}),
            **({"version": request.result_version.number} if request.result_version else {}),
        },
    )


def tuning_jobs_poll(*, backend: Any) -> dict[str, int]:
    """One poll cycle: ask the backend about every queued or running job of this backend (one batched
    call), and record what changed: a job whose state, progress and log are as recorded costs no write.
    Returns counts for the task's result and the metrics."""
    active = list(
        TuningRequest.objects.filter(
            status__in=(TuningStatus.QUEUED, TuningStatus.RUNNING), job_backend=backend.name
        )
        .exclude(job_name="")
        .values_list("pk", "job_name", "job_state", "progress", "log_tail", "started_at")
    )
    if not active:
        return {"polled": 0, "changed": 0}
    statuses = backend.poll([row[1] for row in active])
    changed = failed = 0
    for pk, name, state, progress, log_tail, started_at in active:
        status = statuses.get(name)
        if status is None:
            continue
        unchanged = (
            state == int(status.state)
            and (status.progress is None or status.progress == progress)
            and (not status.log_tail or status.log_tail[-4000:] == log_tail)
            and (started_at is not None or status.started_at is None)
        )
        if unchanged:
            continue
        try:
            with transaction.atomic():
                request = (
                    TuningRequest.objects.select_for_update(of=("self",))
                    .select_related("adapter__team", "requested_by")
                    .get(pk=pk)
                )
                if request.status not in (TuningStatus.QUEUED, TuningStatus.RUNNING):
                    continue
                _apply_status(request, status)
                changed += 1
        except Exception:  # one request that cannot be recorded must not stop the others' polling
            logger.exception(
                "tuning request %s: could not record its job's state", pk, extra={"event": "poll_failed"}
            )
            failed += 1
    return {"polled": len(active), "changed": changed, **({"failed": failed} if failed else {})}


def tuning_job_cancel(*, request_id: int, backend: Any) -> None:
    request = TuningRequest.objects.filter(pk=request_id).first()
    if (
        request is None
        or not request.job_name
        or request.status not in (TuningStatus.QUEUED, TuningStatus.RUNNING)
    ):
        return
    backend.cancel(request.job_name)
