from celery import shared_task
from django.db import OperationalError

from apps.common.tasks import send_safely
from apps.workflows.selectors import approval_requests_unnotified
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


@shared_task(name="workers.workflows.notify_pending")
def notify_pending() -> int:
    """Beat: reviewers of open requests who were never told (the broker was down when it was queued)."""
    pending = approval_requests_unnotified()
    send_safely(lambda: [notify_reviewers.delay(pk) for pk in pending], "review notifications")
    return len(pending)
