from celery import shared_task
from django.db import OperationalError

from apps.cloud.jobs import BackendUnavailable, get_job_backend
from apps.common.tasks import send_safely
from apps.tuning.selectors import tuning_requests_undispatched
from apps.tuning.services import tuning_job_cancel, tuning_job_dispatch, tuning_jobs_poll


@shared_task(
    name="workers.tuning.dispatch_job",
    autoretry_for=(BackendUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=20,
)
def dispatch_job(request_id: int) -> str:
    """Submit an approved tuning request's job. Safe to run twice: the key makes the second a no-op."""
    request = tuning_job_dispatch(request_id=request_id, backend=get_job_backend())
    return request.status if request is not None else "gone"


@shared_task(name="workers.tuning.poll_jobs", autoretry_for=(OperationalError,), max_retries=2)
def poll_jobs() -> dict[str, int]:
    """Beat: one batched look at every queued or running job (progress, ends, new versions), and the
    dispatch queued again for approved requests that still have no job a minute after approval."""
    undispatched = tuning_requests_undispatched()
    send_safely(lambda: [dispatch_job.delay(pk) for pk in undispatched], "tuning dispatches")
    try:
        result = tuning_jobs_poll(backend=get_job_backend())
    except BackendUnavailable:
        result = {"polled": 0, "changed": 0, "unavailable": 1}  # the next cycle tries again
    return {**result, "redispatched": len(undispatched)}


@shared_task(
    name="workers.tuning.cancel_job",
    autoretry_for=(BackendUnavailable, OperationalError, ConnectionError),
    retry_backoff=True,
    max_retries=10,
)
def cancel_job(request_id: int) -> None:
    tuning_job_cancel(request_id=request_id, backend=get_job_backend())
