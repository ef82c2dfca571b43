from celery import shared_task
from django.db import OperationalError

from apps.common.tasks import send_safely
from apps.costs.selectors import budget_alerts_unsent
from apps.costs.services import budget_alert_notify, budgets_evaluate_all, usage_rollup


@shared_task(
    name="workers.costs.rollup",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=240,
    time_limit=300,
)
def rollup() -> dict:
    """Beat, every minute: rebuild the hours where events were stored, evaluate every budget, and queue
    again the alerts whose notification could not be queued when they fired."""
    result = {"hours": usage_rollup(), "budgets": budgets_evaluate_all()}
    unsent = budget_alerts_unsent()
    send_safely(lambda: [notify_alert.delay(pk) for pk in unsent], "budget alert notifications")
    return {**result, "alerts_requeued": len(unsent)}


@shared_task(
    name="workers.costs.notify_alert", autoretry_for=(OperationalError,), retry_backoff=True, max_retries=8
)
def notify_alert(alert_id: int) -> bool:
    return budget_alert_notify(alert_id=alert_id)
