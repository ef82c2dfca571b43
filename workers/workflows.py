from celery import shared_task
from django.db import OperationalError

from apps.workflows.services import approval_reviewers_notify


@shared_task(
    name="workers.workflows.notify_reviewers",
    autoretry_for=(OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=8,
)
def notify_reviewers(request_id: int) -> int:
    """E-mail the people who can decide an approval request. Idempotent: sends once per request."""
    return approval_reviewers_notify(request_id=request_id)
