"""Reads of endpoints and deployments, narrowed to the teams where the user reads the registry."""

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.accounts.roles import REGISTRY_READERS
from apps.accounts.selectors import user_team_ids
from apps.common.exceptions import NotFound
from apps.registry.models import AdapterVersion
from apps.tuning.models import Deployment, Endpoint
from apps.workflows.models import ApprovalRequest
from apps.workflows.selectors import approval_latest_requests


def endpoint_list(*, user: User, team_id: int | None = None) -> QuerySet[Endpoint]:
    qs = Endpoint.objects.filter(team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    return qs.select_related("team", "created_by").order_by("team__slug", "name")


def endpoint_get(*, user: User, endpoint_id: int) -> Endpoint:
    endpoint = endpoint_list(user=user).filter(pk=endpoint_id).first()
    if endpoint is None:
        raise NotFound(f"No endpoint {endpoint_id}.")
    return endpoint


def deployment_list(
    *, user: User, team_id: int | None = None, endpoint_id: int | None = None, status: str = ""
) -> QuerySet[Deployment]:
    qs = Deployment.objects.filter(team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if endpoint_id is not None:
        qs = qs.filter(endpoint_id=endpoint_id)
    if status:
        qs = qs.filter(status=status)
    return qs.select_related(
        "team", "endpoint__team", "adapter_version__adapter__team", "base_model", "requested_by"
    ).order_by("-created_at", "-id")


def deployment_get(*, user: User, deployment_id: int) -> Deployment:
    deployment = deployment_list(user=user).filter(pk=deployment_id).first()
    if deployment is None:
        raise NotFound(f"No deployment {deployment_id}.")
    return deployment


def deployable_versions(*, user: User, team_ids: list[int] | None = None) -> QuerySet[AdapterVersion]:
    """Adapter versions the user can read (of these teams), newest first: what a deployment may name."""
    qs = AdapterVersion.objects.filter(adapter__team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_ids is not None:
        qs = qs.filter(adapter__team_id__in=team_ids)
    return (
        qs.select_related("adapter__team", "adapter__base_model")
        .prefetch_related("aliases")
        .order_by("adapter__team__slug", "adapter__name", "-number")
    )


def deployable_version_get(*, user: User, version_id: int) -> AdapterVersion:
    version = deployable_versions(user=user).filter(pk=version_id).first()
    if version is None:
        raise NotFound(f"No adapter version {version_id}.")
    return version


def endpoint_history(*, endpoint: Endpoint, limit: int = 100) -> list[Deployment]:
    """The endpoint's deployments, newest first, each with its approval request (`approval`) and who
    approved it (`approved_by`)."""
    deployments = list(
        Deployment.objects.filter(endpoint=endpoint)
        .select_related("adapter_version__adapter__team", "base_model", "requested_by")
        .order_by("-created_at", "-id")[:limit]
    )
    return deployments_annotate(deployments)


def deployments_annotate(deployments: list[Deployment]) -> list[Deployment]:
    """Each deployment with its latest approval request (`approval`) and who approved it (`approved_by`),
    in two queries whatever their number."""
    latest = approval_latest_requests(model=Deployment, object_ids=[d.pk for d in deployments])
    for deployment in deployments:
        approval: ApprovalRequest | None = latest.get(deployment.pk)
        deployment.approval = approval  # type: ignore[attr-defined]
        deployment.approved_by = (  # type: ignore[attr-defined]
            sorted(d.reviewer.username for d in approval.approvals) if approval is not None else []  # type: ignore[attr-defined]
        )
    return deployments


def deployment_annotate(deployment: Deployment) -> Deployment:
    return deployments_annotate([deployment])[0]
