from celery import shared_task
from django.db import OperationalError

from apps.cloud.warehouse import WarehouseUnavailable
from apps.logs.services import (
    log_events_dispatch_pending,
    log_events_export,
    log_events_scan,
    log_retention_apply,
)


@shared_task(
    name="workers.logs.scan_events",
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=5,
    soft_time_limit=120,
    time_limit=150,
)
def scan_events(event_ids: list[int]) -> dict:
    """Scan staged events and store them redacted. Idempotent: events already stored are skipped; a
    scanner failure quarantines them (beat retries). A lost task is re-dispatched by beat."""
    return log_events_scan(event_ids=event_ids)


@shared_task(name="workers.logs.dispatch_pending", soft_time_limit=60, time_limit=90)
def dispatch_pending() -> int:
    return log_events_dispatch_pending()


@shared_task(
    name="workers.logs.export",
    autoretry_for=(WarehouseUnavailable, OperationalError),
    retry_backoff=True,
    retry_backoff_max=600,
    max_retries=5,
    soft_time_limit=300,
    time_limit=360,
)
def export() -> int:
    return log_events_export()


@shared_task(name="workers.logs.apply_retention", soft_time_limit=600, time_limit=660)
def apply_retention() -> dict:
    return log_retention_apply()
