"""Writes to the model and adapter registry. Each checks the actor's role, writes, audits in the same
transaction, and asks for the MLflow mirror to catch up once the transaction has committed."""

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import REGISTRY_WRITERS
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.registry.models import (
    Adapter,
    AdapterAlias,
    AdapterVersion,
    AliasMove,
    FoundationModel,
    MoveStatus,
    Provider,
    TuningMethod,
    alias_validator,
    name_validator,
)
from apps.workflows.models import ApprovalRequest, SubjectKind
from apps.workflows.registry import SubjectHandler, subject_kind_register
from apps.workflows.services import approval_request_open

ARTIFACT_SCHEMES = ("gs://", "s3://", "file://", "hf://", "https://", "/")
# Called with an adapter's id, inside the transaction, when one of its aliases moved: the tuning app
# registers the synchronisation of the aliases of the versions it uploaded to a provider (Vertex AI's
# Model Registry), so that the registry does not depend on the tuning app.
ALIAS_MOVED_HOOKS: list[Callable[[int], None]] = []
DATASET_SCHEMES = (*ARTIFACT_SCHEMES, "bq://", "atalaya://")  # atalaya://datasets/…: exported annotations
MAX_METRICS = 50
MAX_JSON_CHARS = 20_000


def _require(actor: User, team_id: int, what: str) -> None:
    if not user_has_role(actor, team_id, REGISTRY_WRITERS):
        raise PermissionDenied(f"You cannot {what} in this team.")


def _validate_slug(value: str, validator: Any, field: str) -> None:
    try:
        validator(value)
    except ValidationError as exc:
        raise Unprocessable(
            f"{field}: {exc.messages[0]}", code="invalid_" + field, details={"field": field}
        ) from None


def _validate_uri(
    value: str, field: str, *, required: bool, schemes: tuple[str, ...] = ARTIFACT_SCHEMES
) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise Unprocessable(f"{field}: give a URI.", code="invalid_" + field, details={"field": field})
        return ""
    if len(value) > 1000 or not value.startswith(schemes) or any(c.isspace() for c in value):
        raise Unprocessable(
            f"{field}: use a URI starting with {', '.join(schemes)} (at most 1,000 characters, no spaces).",
            code="invalid_" + field,
            details={"field": field},
        )
    return value


def _validate_metrics(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict) or len(metrics) > MAX_METRICS:
        raise Unprocessable(f"metrics: an object of at most {MAX_METRICS} numbers.", code="invalid_metrics")
    clean: dict[str, float] = {}
    for key, value in metrics.items():
        if not isinstance(key, str) or not key or len(key) > 100:
            raise Unprocessable("metrics: names are text of 1 to 100 characters.", code="invalid_metrics")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise Unprocessable(
                f"metrics.{key}: must be a finite number.", code="invalid_metrics", details={"metric": key}
            )
        clean[key] = float(value)
    return clean


def _validate_object(value: Any, field: str) -> dict[str, Any]:
    import json

    if not isinstance(value, dict):
        raise Unprocessable(f"{field}: must be an object.", code="invalid_" + field)
    if len(json.dumps(value, default=str)) > MAX_JSON_CHARS:
        raise Unprocessable(f"{field}: too large.", code="invalid_" + field)
    return value


def _mirror(kind: str, pk: int) -> None:
    """Ask the MLflow mirror to catch up with this row after the commit (beat retries what fails)."""
    from workers.registry import registry_mlflow_sync

    enqueue_on_commit(registry_mlflow_sync, kind, pk)


@transaction.atomic
def base_model_register(
    *,
    actor: User,
    team: Team,
    provider: str,
    model_id: str,
    context_window: int,
    display_name: str = "",
    notes: str = "",
) -> FoundationModel:
    _require(actor, team.pk, "register models")
    if provider not in Provider.values:
        raise Unprocessable(
            f"provider: one of {', '.join(Provider.values)}.",
            code="invalid_provider",
            details={"field": "provider"},
        )
    model_id = (model_id or "").strip()
    if not model_id or len(model_id) > 200 or any(c.isspace() for c in model_id):
        raise Unprocessable(
            "model_id: the provider's identifier, without spaces (at most 200).", code="invalid_model_id"
        )
    if (
        isinstance(context_window, bool)
        or not isinstance(context_window, int)
        or not 1 <= context_window <= 100_000_000
    ):
        raise Unprocessable("context_window: a number of tokens, at least 1.", code="invalid_context_window")
    try:
        with transaction.atomic():
            model = FoundationModel.objects.create(
                team=team,
                provider=provider,
                model_id=model_id,
                display_name=display_name.strip()[:200],
                context_window=context_window,
                notes=notes[:4000],
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(
            f"{model_id} of {provider} is already registered in {team.slug}.", code="model_exists"
        ) from None
    audit_event_record(
        actor=actor,
        action="registry.base_model_registered",
        target=model,
        changes={"provider": provider, "model_id": model_id, "context_window": context_window},
    )
    _mirror("base_model", model.pk)
    return model


@transaction.atomic
def adapter_create(
    *,
    actor: User,
    base_model: FoundationModel,
    name: str,
    method: str = TuningMethod.LORA,
    description: str = "",
) -> Adapter:
    team = base_model.team
    _require(actor, team.pk, "create adapters")
    _validate_slug(name, name_validator, "name")
    if method not in TuningMethod.values:
        raise Unprocessable(f"method: one of {', '.join(TuningMethod.values)}.", code="invalid_method")
    if method == TuningMethod.VERTEX_SUPERVISED and base_model.provider != Provider.VERTEX:
        raise Unprocessable(
            "method: Vertex managed tuning needs a Vertex AI base model (a Gemini model).",
            code="invalid_method",
        )
    try:
        with transaction.atomic():
            adapter = Adapter.objects.create(
                team=team,
                name=name,
                base_model=base_model,
                method=method,
                description=description[:2000],
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(
            f"An adapter named {name!r} already exists in {team.slug}.", code="adapter_exists"
        ) from None
    audit_event_record(
        actor=actor,
        action="registry.adapter_created",
        target=adapter,
        changes={"name": name, "base_model": base_model.model_id, "method": method},
    )
    _mirror("adapter", adapter.pk)
    return adapter


@transaction.atomic
def adapter_version_register(
    *,
    actor: User,
    adapter: Adapter,
    artifact_uri: str,
    metrics: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    dataset_uri: str = "",
    validation_dataset_uri: str = "",
    lineage: dict[str, Any] | None = None,
    notes: str = "",
    check_role: bool = True,
) -> AdapterVersion:
    """A new version of the adapter, numbered after the last one. The tuning app registers the versions its
    jobs produce with their lineage (check_role=False: the approval already decided who may)."""
    if check_role:
        _require(actor, adapter.team_id, "register adapter versions")
    adapter = Adapter.objects.select_for_update(of=("self",)).select_related("team").get(pk=adapter.pk)
    version = AdapterVersion.objects.create(
        adapter=adapter,
        number=(adapter.versions.aggregate(n=Max("number"))["n"] or 0) + 1,
        artifact_uri=_validate_uri(artifact_uri, "artifact_uri", required=True),
        metrics=_validate_metrics(metrics or {}),
        hyperparameters=_validate_object(hyperparameters or {}, "hyperparameters"),
        dataset_uri=_validate_uri(dataset_uri, "dataset_uri", required=False, schemes=DATASET_SCHEMES),
        validation_dataset_uri=_validate_uri(
            validation_dataset_uri, "validation_dataset_uri", required=False, schemes=DATASET_SCHEMES
        ),
        lineage=_validate_object(lineage or {}, "lineage"),
        notes=notes[:4000],
        registered_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="registry.version_registered",
        target=version,
        team=adapter.team,
        changes={
            "adapter": str(adapter),
            "number": version.number,
            "artifact_uri": version.artifact_uri,
            "metrics": version.metrics,
            "lineage": version.lineage,
        },
    )
    _mirror("version", version.pk)
    return version


@dataclass(frozen=True)
class AliasMoveResult:
    move: AliasMove
    request: ApprovalRequest


@transaction.atomic
def alias_move_request(
    *, actor: User, adapter: Adapter, alias: str, version_number: int | None, reason: str = ""
) -> AliasMoveResult:
    """Ask to point `alias` at a version (None: take the alias off). Applied when the request is approved."""
    _require(actor, adapter.team_id, "move adapter aliases")
    _validate_slug(alias, alias_validator, "alias")
    adapter = Adapter.objects.select_for_update(of=("self",)).select_related("team").get(pk=adapter.pk)
    version = None
    if version_number is not None:
        version = adapter.versions.filter(number=version_number).first()
        if version is None:
            raise NotFound(f"{adapter} has no version {version_number}.")
    current = AdapterAlias.objects.filter(adapter=adapter, name=alias).select_related("version").first()
    if (current.version_id if current else None) == (version.pk if version else None):
        where = f"v{version.number}" if version else "no version"
        raise Conflict(f"{alias} already points at {where}.", code="alias_unchanged")
    if AliasMove.objects.filter(adapter=adapter, alias=alias, status=MoveStatus.PENDING).exists():
        raise Conflict(f"A move of {alias} is already waiting for approval.", code="move_pending")
    move = AliasMove.objects.create(
        adapter=adapter,
        alias=alias,
        version=version,
        previous_version=current.version if current else None,
        reason=reason.strip()[:500],
        requested_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="registry.alias_move_requested",
        target=move,
        team=adapter.team,
        changes={
            "alias": alias,
            "to_version": version.number if version else None,
            "from_version": current.version.number if current else None,
            "reason": move.reason,
        },
    )
    target = f"v{version.number}" if version else "nothing"
    request = approval_request_open(
        subject=move,
        subject_kind=SubjectKind.ALIAS_MOVE,
        team=adapter.team,
        requested_by=actor,
        summary=f"{adapter} {alias} → {target}",
    )
    from workers.workflows import notify_reviewers

    enqueue_on_commit(notify_reviewers, request.pk)
    return AliasMoveResult(move=move, request=request)


_MOVE_OUTCOME = {
    "rejected": MoveStatus.REJECTED,
    "changes_requested": MoveStatus.CHANGES_REQUESTED,
    "withdrawn": MoveStatus.WITHDRAWN,
}


def _alias_apply(*, move: AliasMove, actor: User, request: ApprovalRequest) -> None:
    current = AdapterAlias.objects.select_for_update().filter(adapter=move.adapter, name=move.alias).first()
    before = current.version.number if current else None
    target = move.version
    if target is None:
        if current is not None:
            current.delete()
    elif current is None:
        AdapterAlias.objects.create(adapter=move.adapter, name=move.alias, version=target, moved_by=actor)
    else:
        current.version = target
        current.moved_by = actor
        current.save(update_fields=["version", "moved_by", "updated_at"])
    audit_event_record(
        actor=actor,
        action="registry.alias_moved",
        target=move.adapter,
        changes={
            "alias": move.alias,
            "from_version": before,
            "to_version": target.number if target is not None else None,
            "approval_request": request.pk,
            "requested_by": move.requested_by.username,
        },
    )
    Adapter.objects.filter(pk=move.adapter_id).update(mlflow_synced_at=None)
    _mirror("adapter", move.adapter_id)
    for hook in ALIAS_MOVED_HOOKS:
        hook(move.adapter_id)


def _alias_move_close(*, subject: AliasMove, request: ApprovalRequest, actor: User, comment: str) -> None:
    subject = (
        AliasMove.objects.select_for_update(of=("self",))
        .select_related("adapter__team", "version")
        .get(pk=subject.pk)
    )
    if request.status == "approved":
        _alias_apply(move=subject, actor=actor, request=request)
        subject.status = MoveStatus.APPLIED
    else:
        subject.status = _MOVE_OUTCOME[request.status]
        audit_event_record(
            actor=actor,
            action="registry.alias_move_closed",
            target=subject,
            team=request.team,
            changes={"status": subject.status, "approval_request": request.pk, "comment": comment},
        )
    subject.decided_at = timezone.now()
    subject.save(update_fields=["status", "decided_at", "updated_at"])


def register_subjects() -> None:
    subject_kind_register(
        SubjectKind.ALIAS_MOVE,
        SubjectHandler(
            model=AliasMove,
            on_approved=_alias_move_close,
            on_rejected=_alias_move_close,
            on_changes_requested=_alias_move_close,
            on_withdrawn=_alias_move_close,
        ),
    )


def mlflow_synced(*, kind: str, pk: int, version: str = "", run_id: str = "") -> None:
    """Record that MLflow has caught up with a row (called by the sync task, not by users)."""
    now = timezone.now()
    if kind == "base_model":
        FoundationModel.objects.filter(pk=pk).update(mlflow_synced_at=now)
    elif kind == "adapter":
        Adapter.objects.filter(pk=pk).update(mlflow_synced_at=now)
    elif kind == "version":
        AdapterVersion.objects.filter(pk=pk).update(
            mlflow_synced_at=now, mlflow_version=version, mlflow_run_id=run_id
        )
    else:
        raise ValueError(f"unknown registry kind {kind!r}")
