from celery import shared_task
from django.db import OperationalError

from apps.registry.mlflow_sync import MirrorUnavailable, sync, unsynced


@shared_task(
    name="workers.registry.mlflow_sync",
    autoretry_for=(MirrorUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=10,
)
def registry_mlflow_sync(kind: str, pk: int) -> None:
    """Mirror one registry row into MLflow. Idempotent: running it twice changes nothing more."""
    sync(kind, pk)


@shared_task(name="workers.registry.mlflow_catch_up")
def registry_mlflow_catch_up() -> int:
    """Beat: queue a sync for every row MLflow does not have yet (MLflow was down, a task was lost)."""
    rows = unsynced()
    for kind, pk in rows:
        registry_mlflow_sync.delay(kind, pk)
    return len(rows)
