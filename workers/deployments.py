from celery import shared_task
from django.db import OperationalError

from apps.cloud.jobs import BackendUnavailable, get_serving_backend
from apps.tuning.deployments import (
    deployment_action_apply,
    deployment_deploy,
    deployments_stalled,
    provider_aliases_sync,
)


@shared_task(
    name="workers.deployments.deploy",
    autoretry_for=(BackendUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=20,
    soft_time_limit=2400,
    time_limit=2460,
)
def deploy(deployment_id: int) -> str:
    """Put an approved deployment on its endpoint. Safe to run twice: a live deployment is left alone,
    and the backends adopt the model version already deployed instead of deploying it again."""
    deployment = deployment_deploy(deployment_id=deployment_id, backend=get_serving_backend())
    return deployment.status if deployment is not None else "gone"


@shared_task(
    name="workers.deployments.apply_action",
    autoretry_for=(BackendUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=20,
    soft_time_limit=2400,
    time_limit=2460,
)
def apply_action(deployment_id: int) -> str:
    """Promote or roll back, as asked on the page or the API. Safe to run twice: the calls are
    idempotent and the new state is recorded once."""
    deployment = deployment_action_apply(deployment_id=deployment_id, backend=get_serving_backend())
    return deployment.status if deployment is not None else "gone"


@shared_task(name="workers.deployments.catch_up")
def catch_up() -> dict[str, int]:
    """Beat: queue again the deploys and the promotes or roll backs whose task was lost."""
    stalled = deployments_stalled()
    for pk in stalled["deploy"]:
        deploy.delay(pk)
    for pk in stalled["apply_action"]:
        apply_action.delay(pk)
    return {kind: len(pks) for kind, pks in stalled.items()}


@shared_task(
    name="workers.deployments.sync_provider_aliases",
    autoretry_for=(BackendUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=20,
)
def sync_provider_aliases(adapter_id: int) -> int:
    """An alias of the adapter moved: the versions uploaded to the provider follow. Idempotent."""
    return provider_aliases_sync(adapter_id=adapter_id, backend=get_serving_backend())
