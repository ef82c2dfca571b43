"""Deployment requests: an adapter version (or an open base model) put on an endpoint with a strategy,
through approval, by a task; then promoted or rolled back with one click each.

Lifecycle (DEPLOYMENT_TRANSITIONS): draft → pending_approval → approved → deploying → live → promoted |
rolled_back, or failed / rejected. Changes requested or a withdrawal send it back to draft.

How an endpoint evolves (one change at a time):
- At most one deployment per endpoint is *in flight* (pending approval, approved, deploying or live):
  another is refused (409 `endpoint_busy`) until it is promoted or rolled back.
- `live` means on trial: the deployment takes its share (replace 100 %, canary n % in 1..50, A/B n % in
  1..99), and what served before still stands by on the endpoint (at its scaled share, or 0 % after a
  replace), so that a rollback is instant. The split before it went live is kept in
  `previous_traffic_split`.
- Promote: the deployment takes 100 %, the models of the earlier deployments leave the endpoint
  (undeployed), and those deployments become `replaced` (not rolled back: they served, and were
  superseded). The endpoint then holds exactly one model.
- Roll back a live deployment: the previous split is put back and its model undeployed. Roll back a
  promoted one: the deployment it replaced is deployed again (its registered model version) and takes
  the traffic back (it is `promoted` again), then the rolled-back model is undeployed.
- Promote and roll back are for the team's engineers, administrators and governance (governance can
  stop a bad canary); requests are filed by engineers and administrators, approved by the policy's
  approvers (four eyes).

Provider calls never run in a web request (a Vertex deploy or undeploy takes minutes, and the worker holds
the Vertex role): they run in tasks, outside any transaction, with the state recorded before and after.
- Deploy (`workers.deployments.deploy`): `deploying` and the previous split are recorded first; a retry
  registers nothing twice (the model version is recorded as soon as it is registered) and deploys nothing
  twice (the backends adopt a deployment of the same model version already on the endpoint).
- Promote and roll back: the click checks everything (role, state, one action at a time) and records the
  asked-for `action` (audited); `workers.deployments.apply_action` makes the calls, each idempotent (set the
  whole split, undeploy what may be gone already, deploy what may be there already), then records the new
  state once. A refusal clears the action and keeps the provider's message in `error`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import REGISTRY_WRITERS, Role
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.cloud.jobs.base import BackendError, RegisteredModel, scale
from apps.common.exceptions import Conflict, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.registry.models import AdapterVersion, FoundationModel, Provider, name_validator
from apps.tuning.models import (
    DEPLOYMENT_TRANSITIONS,
    Deployment,
    DeploymentAction,
    DeploymentStatus,
    DeploymentStrategy,
    Endpoint,
)
from apps.workflows.models import ApprovalRequest, SubjectKind
from apps.workflows.registry import SubjectHandler, subject_kind_register
from apps.workflows.services import approval_request_open

DEPLOYMENT_REQUESTERS = REGISTRY_WRITERS  # administrators and engineers of the team
DEPLOYMENT_OPERATORS = frozenset({Role.ADMIN, Role.ENGINEER, Role.GOVERNANCE})  # promote, roll back
IN_FLIGHT = (
    DeploymentStatus.PENDING_APPROVAL,
    DeploymentStatus.APPROVED,
    DeploymentStatus.DEPLOYING,
    DeploymentStatus.LIVE,
)
ON_ENDPOINT = (DeploymentStatus.LIVE, DeploymentStatus.PROMOTED)
PERCENT_RANGES = {
    DeploymentStrategy.REPLACE: (100, 100, "a replace takes 100 % at once"),
    DeploymentStrategy.CANARY: (1, 50, "a canary takes 1 to 50 % of the traffic"),
    DeploymentStrategy.AB: (1, 99, "an A/B split gives the new model 1 to 99 % of the traffic"),
}
DEPLOYABLE_PROVIDERS = {Provider.HUGGING_FACE: "hf://"}  # base models with weights to serve
MAX_ACCELERATORS = 8


def _require(actor: User, team_id: int, roles: Any, what: str) -> None:
    if not user_has_role(actor, team_id, roles):
        raise PermissionDenied(f"You cannot {what} in this team.")


def _move(deployment: Deployment, to: str) -> str:
    """Change the status if the lifecycle allows it; returns the previous status."""
    before = deployment.status
    if to not in DEPLOYMENT_TRANSITIONS[before]:
        raise Conflict(
            f"A deployment that is {deployment.get_status_display().lower()} cannot become "
            f"{DeploymentStatus(to).label.lower()}.",
            code="invalid_transition",
            details={"from": before, "to": to},
        )
    deployment.status = to
    return before


def endpoint_display_name(endpoint: Endpoint) -> str:
    """The provider's name for the endpoint: unique per team, and how a retried first deploy finds the
    endpoint it created before its resource name was recorded."""
    return f"atalaya-{endpoint.team.slug}-{endpoint.name}"[:128]


def _what(deployment: Deployment) -> str:
    return str(deployment.adapter_version or deployment.base_model)


# Endpoints


@transaction.atomic
def endpoint_create(*, actor: User, team: Team, name: str) -> Endpoint:
    """An endpoint of the team. The provider's endpoint is created at its first deployment."""
    _require(actor, team.pk, DEPLOYMENT_REQUESTERS, "create endpoints")
    name = (name or "").strip()
    try:
        name_validator(name)
    except Exception:
        raise Unprocessable(
            "name: lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100).",
            code="invalid_name",
            details={"field": "name"},
        ) from None
    try:
        with transaction.atomic():
            endpoint = Endpoint.objects.create(
                team=team, name=name, backend=settings.JOB_BACKEND, created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            f"An endpoint named {name!r} already exists in {team.slug}.", code="endpoint_exists"
        ) from None
    audit_event_record(
        actor=actor,
        action="deployments.endpoint_created",
        target=endpoint,
        changes={"name": name, "backend": endpoint.backend},
    )
    return endpoint


# Requests


def _in_flight(endpoint: Endpoint, *, exclude: int | None = None) -> Deployment | None:
    qs = Deployment.objects.filter(endpoint=endpoint, status__in=IN_FLIGHT)
    if exclude is not None:
        qs = qs.exclude(pk=exclude)
    return qs.order_by("created_at").first()


def _require_free(endpoint: Endpoint, *, exclude: int | None = None) -> None:
    busy = _in_flight(endpoint, exclude=exclude)
    if busy is not None:
        raise Conflict(
            f"{endpoint.name} already has deployment #{busy.pk} {busy.get_status_display().lower()}: "
            "it must be promoted or rolled back (or withdrawn) first.",
            code="endpoint_busy",
            details={"deployment": busy.pk, "status": busy.status},
        )


def _require_something_serving(endpoint: Endpoint, strategy: str) -> None:
    if strategy == DeploymentStrategy.REPLACE:
        return
    if not Deployment.objects.filter(endpoint=endpoint, status__in=ON_ENDPOINT).exists():
        raise Unprocessable(
            f"strategy: a {DeploymentStrategy(strategy).label.split(' (')[0].lower()} shares {endpoint.name} "
            "with what serves there now, and nothing does yet: deploy with replace first.",
            code="nothing_to_share",
            details={"field": "strategy"},
        )


def _percent(strategy: str, given: Any) -> int:
    if strategy not in PERCENT_RANGES:
        raise Unprocessable(
            f"strategy: one of {', '.join(DeploymentStrategy.values)}.",
            code="invalid_strategy",
            details={"field": "strategy"},
        )
    low, high, rule = PERCENT_RANGES[DeploymentStrategy(strategy)]
    if given is None and low == high:
        return high
    if isinstance(given, bool) or not isinstance(given, int) or not low <= given <= high:
        raise Unprocessable(
            f"traffic_percent: {rule}.", code="invalid_traffic_percent", details={"field": "traffic_percent"}
        )
    return given


def _hardware(machine_type: str, accelerator_type: str, accelerator_count: Any) -> tuple[str, str, int]:
    machine_type, accelerator_type = (machine_type or "").strip(), (accelerator_type or "").strip()
    for field, value in (("machine_type", machine_type), ("accelerator_type", accelerator_type)):
        if len(value) > 64 or any(c.isspace() for c in value):
            raise Unprocessable(
                f"{field}: the provider's name, without spaces (at most 64).",
                code="invalid_hardware",
                details={"field": field},
            )
    if isinstance(accelerator_count, bool) or not isinstance(accelerator_count, int):
        raise Unprocessable("accelerator_count: a whole number.", code="invalid_hardware")
    if not 0 <= accelerator_count <= MAX_ACCELERATORS:
        raise Unprocessable(
            f"accelerator_count: 0 to {MAX_ACCELERATORS}.",
            code="invalid_hardware",
            details={"field": "accelerator_count"},
        )
    if bool(accelerator_type) != bool(accelerator_count):
        raise Unprocessable(
            "accelerator_type and accelerator_count go together (both, or neither).",
            code="invalid_hardware",
            details={"field": "accelerator_type"},
        )
    if accelerator_type and not machine_type:
        raise Unprocessable(
            "machine_type: an accelerator is attached to a machine type; name it.",
            code="invalid_hardware",
            details={"field": "machine_type"},
        )
    return machine_type, accelerator_type, accelerator_count


@transaction.atomic
def deployment_create(
    *,
    actor: User,
    endpoint: Endpoint,
    strategy: str,
    justification: str,
    adapter_version: AdapterVersion | None = None,
    base_model: FoundationModel | None = None,
    traffic_percent: int | None = None,
    machine_type: str = "",
    accelerator_type: str = "",
    accelerator_count: int = 0,
) -> Deployment:
    """A draft request to put an adapter version (or an open base model) of the endpoint's team on it."""
    _require(actor, endpoint.team_id, DEPLOYMENT_REQUESTERS, "request deployments")
    if (adapter_version is None) == (base_model is None):
        raise Unprocessable(
            "Give an adapter version or a base model to deploy (one of them).", code="invalid_model"
        )
    if adapter_version is not None and adapter_version.adapter.team_id != endpoint.team_id:
        raise Unprocessable(
            "adapter_version: it belongs to another team than the endpoint.",
            code="invalid_adapter_version",
            details={"field": "adapter_version"},
        )
    if base_model is not None:
        if base_model.team_id != endpoint.team_id:
            raise Unprocessable(
                "base_model: it belongs to another team than the endpoint.",
                code="invalid_base_model",
                details={"field": "base_model"},
            )
        if base_model.provider not in DEPLOYABLE_PROVIDERS:
            raise Unprocessable(
                f"base_model: {base_model.get_provider_display()} models are served by their provider; only "
                "open-weight (Hugging Face) base models are deployed to an endpoint.",
                code="invalid_base_model",
                details={"field": "base_model"},
            )
    percent = _percent(strategy, traffic_percent)
    machine, accelerator, count = _hardware(machine_type, accelerator_type, accelerator_count)
    if not (justification or "").strip():
        raise Unprocessable(
            "justification: say why this deployment is needed.",
            code="invalid_justification",
            details={"field": "justification"},
        )
    _require_something_serving(endpoint, strategy)
    _require_free(endpoint)
    deployment = Deployment.objects.create(
        team=endpoint.team,
        endpoint=endpoint,
        adapter_version=adapter_version,
        base_model=base_model,
        strategy=strategy,
        traffic_percent=percent,
        machine_type=machine,
        accelerator_type=accelerator,
        accelerator_count=count,
        justification=justification.strip()[:4000],
        requested_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="deployments.deployment_created",
        target=deployment,
        changes={
            "endpoint": str(endpoint),
            "model": _what(deployment),
            "strategy": strategy,
            "traffic_percent": percent,
            "hardware": f"{machine} {count}× {accelerator}".strip() if count else machine,
        },
    )
    return deployment


@transaction.atomic
def deployment_submit(*, actor: User, deployment: Deployment) -> ApprovalRequest:
    """Send a draft to approval. The endpoint's row is locked: two requests on one endpoint cannot both
    pass the one-change-at-a-time check."""
    Endpoint.objects.select_for_update().get(pk=deployment.endpoint_id)
    deployment = (
        Deployment.objects.select_for_update(of=("self",))
        .select_related("endpoint__team", "adapter_version__adapter", "base_model")
        .get(pk=deployment.pk)
    )
    if deployment.requested_by_id != actor.pk:
        _require(actor, deployment.team_id, DEPLOYMENT_REQUESTERS, "submit deployments")
    _move(deployment, DeploymentStatus.PENDING_APPROVAL)
    _require_something_serving(deployment.endpoint, deployment.strategy)
    _require_free(deployment.endpoint, exclude=deployment.pk)
    deployment.save(update_fields=["status", "updated_at"])
    audit_event_record(
        actor=actor,
        action="deployments.deployment_submitted",
        target=deployment,
        changes={"strategy": deployment.strategy, "traffic_percent": deployment.traffic_percent},
    )
    strategy = {
        DeploymentStrategy.REPLACE: "replace, 100 %",
        DeploymentStrategy.CANARY: f"canary at {deployment.traffic_percent} %",
        DeploymentStrategy.AB: f"A/B at {deployment.traffic_percent} %",
    }[DeploymentStrategy(deployment.strategy)]
    approval = approval_request_open(
        subject=deployment,
        subject_kind=SubjectKind.DEPLOYMENT,
        team=deployment.team,
        requested_by=deployment.requested_by,
        summary=f"Deploy {_what(deployment)} on {deployment.endpoint.name} ({strategy})",
    )
    from workers.workflows import notify_reviewers

    enqueue_on_commit(notify_reviewers, approval.pk)
    return approval


# The approval engine's callbacks

_OUTCOME = {
    "approved": DeploymentStatus.APPROVED,
    "rejected": DeploymentStatus.REJECTED,
    "changes_requested": DeploymentStatus.DRAFT,
    "withdrawn": DeploymentStatus.DRAFT,
}


def _request_close(*, subject: Deployment, request: ApprovalRequest, actor: User, comment: str) -> None:
    deployment = Deployment.objects.select_for_update().get(pk=subject.pk)
    before = _move(deployment, _OUTCOME[request.status])
    if deployment.status == DeploymentStatus.REJECTED:
        deployment.closed_at = timezone.now()
    deployment.save(update_fields=["status", "closed_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="deployments.deployment_decided",
        target=deployment,
        team=request.team,
        changes={
            "status": {"from": before, "to": deployment.status},
            "approval_request": request.pk,
            "comment": comment,
        },
    )
    if deployment.status == DeploymentStatus.APPROVED:
        from workers.deployments import deploy

        enqueue_on_commit(deploy, deployment.pk)


def register_subjects() -> None:
    from apps.registry.services import ALIAS_MOVED_HOOKS

    if _alias_moved not in ALIAS_MOVED_HOOKS:
        ALIAS_MOVED_HOOKS.append(_alias_moved)
    subject_kind_register(
        SubjectKind.DEPLOYMENT,
        SubjectHandler(
            model=Deployment,
            on_approved=_request_close,
            on_rejected=_request_close,
            on_changes_requested=_request_close,
            on_withdrawn=_request_close,
        ),
    )


# Deploying (the task's body)


def _fail(deployment_id: int, message: str) -> Deployment:
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.status in (DeploymentStatus.APPROVED, DeploymentStatus.DEPLOYING):
            before = _move(deployment, DeploymentStatus.FAILED)
            deployment.error = message[:4000]
            deployment.closed_at = timezone.now()
            deployment.save(update_fields=["status", "error", "closed_at", "updated_at"])
            audit_event_record(
                actor=None,
                action="deployments.deployment_failed",
                target=deployment,
                changes={"status": {"from": before, "to": "failed"}, "error": deployment.error},
            )
    return deployment


def _registration(deployment: Deployment, backend: Any) -> RegisteredModel:
    """The model version to deploy: the one an earlier deployment of the same version registered, or a
    new upload (a new version under the adapter's model when one was registered before), carrying the
    adapter version's aliases (champion, challenger…)."""
    same = Deployment.objects.filter(
        endpoint__backend=backend.name,
        adapter_version=deployment.adapter_version,
        base_model=deployment.base_model,
    ).exclude(Q(pk=deployment.pk) | Q(model_resource=""))
    earlier = same.order_by("-created_at").first()
    if earlier is not None:
        return RegisteredModel(name=earlier.model_resource, version_id=earlier.model_version_id)
    team = deployment.team.slug
    version = deployment.adapter_version
    if version is not None:
        adapter = version.adapter
        parent = (
            Deployment.objects.filter(endpoint__backend=backend.name, adapter_version__adapter=adapter)
            .exclude(model_resource="")
            .values_list("model_resource", flat=True)
            .first()
        )
        return backend.register_model(
            display_name=f"{team}-{adapter.name}",
            artifact_uri=version.artifact_uri,
            serving_image="",
            aliases=sorted(alias.name for alias in version.aliases.all()),
            parent_model=parent or "",
            labels={
                "atalaya-team": team,
                "atalaya-adapter": adapter.name,
                "atalaya-version": str(version.number),
            },
        )
    model = deployment.base_model
    if model is None:  # the deployment_has_a_model constraint: a version or a base model
        raise ValueError(f"deployment #{deployment.pk} names no model")
    parent = (
        Deployment.objects.filter(endpoint__backend=backend.name, base_model=model)
        .exclude(model_resource="")
        .values_list("model_resource", flat=True)
        .first()
    )
    return backend.register_model(
        display_name=f"{team}-{model.model_id}".replace("/", "-"),
        artifact_uri=DEPLOYABLE_PROVIDERS[Provider(model.provider)] + model.model_id,
        serving_image="",
        parent_model=parent or "",
        labels={"atalaya-team": team, "atalaya-base-model": model.model_id},
    )


def deployment_deploy(*, deployment_id: int, backend: Any) -> Deployment | None:
    """Put an approved deployment on its endpoint. Safe to run again: a deployment already live (or
    failed) is left alone; the registered model version is recorded before the deploy call, so a retry
    does not upload it twice; and the backends adopt the deployment of that version already on the
    endpoint instead of deploying it twice. BackendUnavailable propagates (the task retries)."""
    with transaction.atomic():
        deployment = (
            Deployment.objects.select_for_update(of=("self",))
            .select_related("endpoint__team")
            .filter(pk=deployment_id)
            .first()
        )
        if deployment is None or deployment.status not in (
            DeploymentStatus.APPROVED,
            DeploymentStatus.DEPLOYING,
        ):
            return deployment  # already live, failed, or gone
        endpoint = deployment.endpoint
        if endpoint.backend != backend.name:
            message = (
                f"The endpoint {endpoint.name} lives on {endpoint.backend}, but this console serves "
                f"with {backend.name} (JOB_BACKEND)."
            )
        else:
            message = ""
        if not message and deployment.status == DeploymentStatus.APPROVED:
            before = _move(deployment, DeploymentStatus.DEPLOYING)
            deployment.previous_traffic_split = dict(endpoint.traffic_split)
            deployment.save(update_fields=["status", "previous_traffic_split", "updated_at"])
            audit_event_record(
                actor=None,
                action="deployments.deployment_started",
                target=deployment,
                changes={
                    "status": {"from": before, "to": "deploying"},
                    "backend": backend.name,
                    "previous_traffic_split": deployment.previous_traffic_split,
                },
            )
    if message:
        return _fail(deployment_id, message)
    deployment = Deployment.objects.select_related(
        "endpoint__team", "team", "adapter_version__adapter", "base_model"
    ).get(pk=deployment_id)
    endpoint = deployment.endpoint
    try:
        if not deployment.model_resource:
            registered = _registration(deployment, backend)
            with transaction.atomic():
                Deployment.objects.filter(pk=deployment_id).update(
                    model_resource=registered.name, model_version_id=registered.version_id
                )
            deployment.model_resource, deployment.model_version_id = registered.name, registered.version_id
        result = backend.deploy(
            endpoint=endpoint.resource_name or endpoint_display_name(endpoint),
            model=deployment.model_resource,
            version_id=deployment.model_version_id,
            traffic_percent=deployment.traffic_percent,
            machine_type=deployment.machine_type,
            accelerator_type=deployment.accelerator_type,
            accelerator_count=deployment.accelerator_count,
        )
    except BackendError as exc:
        return _fail(deployment_id, str(exc) or exc.__class__.__name__)
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.status != DeploymentStatus.DEPLOYING:
            return deployment
        before = _move(deployment, DeploymentStatus.LIVE)
        deployment.deployed_model_id = result.deployed_model_id
        deployment.deployed_at = timezone.now()
        deployment.save(update_fields=["status", "deployed_model_id", "deployed_at", "updated_at"])
        endpoint.resource_name = result.endpoint
        endpoint.traffic_split = dict(result.traffic_split)
        endpoint.save(update_fields=["resource_name", "traffic_split", "updated_at"])
        audit_event_record(
            actor=None,
            action="deployments.deployment_live",
            target=deployment,
            changes={
                "status": {"from": before, "to": "live"},
                "model": f"{deployment.model_resource}@{deployment.model_version_id}",
                "deployed_model_id": deployment.deployed_model_id,
                "traffic_split": {"from": deployment.previous_traffic_split, "to": endpoint.traffic_split},
            },
        )
    return deployment


# One click each: promote and roll back


def _check_action(actor: User, deployment: Deployment, to: str, what: str) -> Endpoint:
    """Row locks taken (endpoint, then deployment); the click refused with a precise error, or allowed."""
    endpoint = (
        Endpoint.objects.select_for_update(of=("self",)).select_related("team").get(pk=deployment.endpoint_id)
    )
    locked = Deployment.objects.select_for_update().get(pk=deployment.pk)
    _require(actor, locked.team_id, DEPLOYMENT_OPERATORS, what)
    if to not in DEPLOYMENT_TRANSITIONS[locked.status]:
        _move(locked, to)  # raises the precise 409
    if locked.action:
        raise Conflict(
            f"Deployment #{locked.pk} is already {locked.get_action_display().lower()}: wait for it to finish.",
            code="action_pending",
            details={"action": locked.action},
        )
    if endpoint.backend != settings.JOB_BACKEND:
        raise Conflict(
            f"The endpoint {endpoint.name} lives on {endpoint.backend}, but this console serves with "
            f"{settings.JOB_BACKEND} (JOB_BACKEND).",
            code="backend_mismatch",
        )
    if to == DeploymentStatus.ROLLED_BACK and locked.status == DeploymentStatus.PROMOTED:
        _require_free(endpoint, exclude=locked.pk)
    return endpoint


def _request_action(actor: User, deployment: Deployment, action: str, to: str, what: str) -> Deployment:
    _check_action(actor, deployment, to, what)
    deployment = Deployment.objects.get(pk=deployment.pk)
    deployment.action = action
    deployment.action_requested_by = actor
    deployment.action_requested_at = timezone.now()
    deployment.error = ""
    deployment.save(
        update_fields=["action", "action_requested_by", "action_requested_at", "error", "updated_at"]
    )
    audit_event_record(
        actor=actor,
        action=f"deployments.{action}_requested",
        target=deployment,
        changes={"status": deployment.status, "traffic_split": dict(deployment.endpoint.traffic_split)},
    )
    from workers.deployments import apply_action

    enqueue_on_commit(apply_action, deployment.pk)
    return deployment


@transaction.atomic
def deployment_promote(*, actor: User, deployment: Deployment) -> Deployment:
    """Ask for a live deployment to take all the traffic (the earlier models leave the endpoint and their
    deployments become `replaced`). The worker does it (`deployment_action_apply`)."""
    return _request_action(
        actor, deployment, DeploymentAction.PROMOTE, DeploymentStatus.PROMOTED, "promote deployments"
    )


@transaction.atomic
def deployment_rollback(*, actor: User, deployment: Deployment) -> Deployment:
    """Ask to put back what served before this deployment (the previous split; for a promoted one, the
    deployment it replaced, deployed again at 100 %) and take its model off the endpoint."""
    return _request_action(
        actor, deployment, DeploymentAction.ROLLBACK, DeploymentStatus.ROLLED_BACK, "roll back deployments"
    )


def _promote_calls(backend: Any, endpoint: Endpoint, deployment: Deployment) -> dict[str, Any]:
    earlier = list(
        Deployment.objects.filter(endpoint=endpoint, status__in=ON_ENDPOINT)
        .exclude(pk=deployment.pk)
        .order_by("created_at")
    )
    result = backend.set_traffic(
        endpoint=endpoint.resource_name, traffic_split={deployment.deployed_model_id: 100}
    )
    for other in earlier:
        if other.deployed_model_id:
            backend.undeploy(endpoint=endpoint.resource_name, deployed_model_id=other.deployed_model_id)
    split = {k: v for k, v in dict(result.traffic_split).items() if v} or {deployment.deployed_model_id: 100}
    return {
        "split": split,
        "replaced": [o.pk for o in earlier],
        "undeployed": [o.deployed_model_id for o in earlier if o.deployed_model_id],
    }


def _rollback_calls(backend: Any, endpoint: Endpoint, deployment: Deployment) -> dict[str, Any]:
    previous = {k: int(v) for k, v in deployment.previous_traffic_split.items()}
    redeployed: dict[int, str] = {}
    if deployment.status == DeploymentStatus.PROMOTED:
        replaced = list(
            Deployment.objects.filter(
                endpoint=endpoint, status=DeploymentStatus.REPLACED, deployed_model_id__in=list(previous)
            ).order_by("created_at")
        )
        shares = scale({d.deployed_model_id: previous[d.deployed_model_id] for d in replaced}, 100)
        restored: dict[str, int] = {}
        for index, old in enumerate(replaced):
            again = backend.deploy(
                endpoint=endpoint.resource_name,
                model=old.model_resource,
                version_id=old.model_version_id,
                traffic_percent=100 if index == 0 else 0,
                machine_type=old.machine_type,
                accelerator_type=old.accelerator_type,
                accelerator_count=old.accelerator_count,
            )
            restored[again.deployed_model_id] = shares[old.deployed_model_id]
            redeployed[old.pk] = again.deployed_model_id
    else:
        standing = (
            Deployment.objects.filter(endpoint=endpoint, status__in=ON_ENDPOINT)
            .exclude(pk=deployment.pk)
            .exclude(deployed_model_id="")
            .values_list("deployed_model_id", flat=True)
        )
        restored = scale({k: previous.get(k, 0) for k in standing}, 100)
    if restored:
        backend.set_traffic(endpoint=endpoint.resource_name, traffic_split=restored)
    if deployment.deployed_model_id:
        backend.undeploy(endpoint=endpoint.resource_name, deployed_model_id=deployment.deployed_model_id)
    return {"split": {k: v for k, v in restored.items() if v}, "redeployed": redeployed}


def _action_failed(deployment_id: int, action: str, message: str) -> Deployment:
    with transaction.atomic():
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.action == action:
            deployment.action = ""
            deployment.error = message[:4000]
            deployment.save(update_fields=["action", "error", "updated_at"])
            audit_event_record(
                actor=None,
                action="deployments.action_failed",
                target=deployment,
                changes={"action": action, "error": deployment.error},
            )
    return deployment


def deployment_action_apply(*, deployment_id: int, backend: Any) -> Deployment | None:
    """The worker's half of a promote or roll back: the provider calls, then the record. Safe to run again
    (a retry, a second task): every call is idempotent (set the whole split, undeploy what may be gone
    already, deploy what may be there already), and the record is written once, by the run that finds
    the action still asked for. A refusal clears the action and keeps the provider's message in `error`;
    BackendUnavailable propagates (the task retries)."""
    deployment = (
        Deployment.objects.select_related("endpoint__team", "action_requested_by")
        .filter(pk=deployment_id)
        .first()
    )
    if deployment is None or not deployment.action:
        return deployment
    action, endpoint = deployment.action, deployment.endpoint
    if endpoint.backend != backend.name:
        return _action_failed(
            deployment_id,
            action,
            f"The endpoint {endpoint.name} lives on {endpoint.backend}, but this console serves with "
            f"{backend.name} (JOB_BACKEND).",
        )
    try:
        if action == DeploymentAction.PROMOTE:
            outcome = _promote_calls(backend, endpoint, deployment)
        else:
            outcome = _rollback_calls(backend, endpoint, deployment)
    except BackendError as exc:
        verb = "promote" if action == DeploymentAction.PROMOTE else "roll back"
        return _action_failed(deployment_id, action, f"Could not {verb}: {exc}")
    with transaction.atomic():
        endpoint = Endpoint.objects.select_for_update().get(pk=endpoint.pk)
        deployment = Deployment.objects.select_for_update().get(pk=deployment_id)
        if deployment.action != action:
            return deployment  # recorded by another run
        actor = deployment.action_requested_by
        before_split = dict(endpoint.traffic_split)
        now = timezone.now()
        if action == DeploymentAction.PROMOTE:
            for other in Deployment.objects.select_for_update().filter(pk__in=outcome["replaced"]):
                _move(other, DeploymentStatus.REPLACED)
                other.closed_at = now
                other.save(update_fields=["status", "closed_at", "updated_at"])
            before = _move(deployment, DeploymentStatus.PROMOTED)
            changes: dict[str, Any] = {"replaced": outcome["replaced"], "undeployed": outcome["undeployed"]}
        else:
            for old in Deployment.objects.select_for_update().filter(pk__in=outcome["redeployed"]):
                _move(old, DeploymentStatus.PROMOTED)
                old.deployed_model_id = outcome["redeployed"][old.pk]
                old.closed_at = None
                old.save(update_fields=["status", "deployed_model_id", "closed_at", "updated_at"])
            before = _move(deployment, DeploymentStatus.ROLLED_BACK)
            deployment.closed_at = now
            changes = {"undeployed": deployment.deployed_model_id, "restored": sorted(outcome["redeployed"])}
        deployment.action = ""
        deployment.save(update_fields=["status", "action", "closed_at", "updated_at"])
        endpoint.traffic_split = outcome["split"]
        endpoint.save(update_fields=["traffic_split", "updated_at"])
        audit_event_record(
            actor=actor,
            action="deployments.deployment_promoted"
            if action == DeploymentAction.PROMOTE
            else "deployments.deployment_rolled_back",
            target=deployment,
            changes={
                "status": {"from": before, "to": deployment.status},
                "traffic_split": {"from": before_split, "to": endpoint.traffic_split},
                **changes,
            },
        )
    return deployment


# Catch-up (beat)

# Longer than a task may run (workers.deployments: time_limit), so that a task still running is never
# doubled: only work whose task was lost (a broker restart) or killed is queued again.
STALLED_AFTER = timedelta(minutes=45)


def deployments_stalled(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Deployments whose deploy, or whose asked-for promote or roll back, has made no progress for longer
    than a task may run: their task was lost. Both tasks are safe to run again."""
    before = (now or timezone.now()) - STALLED_AFTER
    deploy = Deployment.objects.filter(
        status__in=(DeploymentStatus.APPROVED, DeploymentStatus.DEPLOYING), updated_at__lt=before
    )
    action = Deployment.objects.exclude(action="").filter(action_requested_at__lt=before)
    return {
        "deploy": list(deploy.values_list("pk", flat=True)),
        "apply_action": list(action.values_list("pk", flat=True)),
    }


# Aliases at the provider: a version uploaded to Vertex AI's Model Registry carries the adapter version's
# aliases (champion, challenger…) as version aliases; when an alias moves in the console (through its
# approval), the uploaded versions follow.


def provider_aliases_sync(*, adapter_id: int, backend: Any) -> int:
    """Make the version aliases of every version of this adapter uploaded through `backend` what the
    console holds. Idempotent; returns how many uploaded versions were set."""
    from apps.registry.models import AdapterAlias, AliasMove

    uploaded = (
        Deployment.objects.filter(endpoint__backend=backend.name, adapter_version__adapter_id=adapter_id)
        .exclude(model_resource="")
        .values_list("adapter_version_id", "model_resource", "model_version_id")
        .distinct()
    )
    holding: dict[int, set[str]] = {}
    for version_id, name in AdapterAlias.objects.filter(adapter_id=adapter_id).values_list(
        "version_id", "name"
    ):
        holding.setdefault(version_id, set()).add(name)
    known = set(AliasMove.objects.filter(adapter_id=adapter_id).values_list("alias", flat=True)) | {
        name for names in holding.values() for name in names
    }
    done = set()
    for version_id, model, provider_version in uploaded:
        if (model, provider_version) in done:
            continue
        done.add((model, provider_version))
        wanted = holding.get(version_id, set())
        backend.set_aliases(
            model=model, version_id=provider_version, add=sorted(wanted), remove=sorted(known - wanted)
        )
    return len(done)


def _alias_moved(adapter_id: int) -> None:
    from workers.deployments import sync_provider_aliases

    enqueue_on_commit(sync_provider_aliases, adapter_id)
