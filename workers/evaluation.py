from celery import shared_task
from django.db import OperationalError

from apps.common.tasks import send_safely
from apps.evaluation.runs import evaluation_run_execute, evaluation_runs_stalled


@shared_task(
    name="workers.evaluation.run",
    autoretry_for=(OperationalError, ConnectionError),
    retry_backoff=True,
    retry_backoff_max=300,
    max_retries=10,
    soft_time_limit=3600,
    time_limit=3660,
)
def run_evaluation(run_id: int) -> str:
    """Carry out an evaluation run. Safe to run twice: cases that have a result are not sent again, and a
    finished run is left alone."""
    run = evaluation_run_execute(run_id=run_id)
    return run.status if run is not None else "gone"


@shared_task(name="workers.evaluation.catch_up")
def catch_up() -> int:
    """Beat: queue again the runs whose task was lost (queued five minutes ago, or running with an expired
    lease)."""
    stalled = evaluation_runs_stalled()
    send_safely(lambda: [run_evaluation.delay(pk) for pk in stalled], "evaluation runs")
    return len(stalled)
