from celery import shared_task

from apps.audit.services import audit_verification_run


@shared_task(name="workers.audit.verify_chain", soft_time_limit=600, time_limit=660)
def verify_chain() -> dict:
    """Scheduled by beat: check the hash chain and keep the outcome for the audit page."""
    result = audit_verification_run()
    return {
        "ok": result.ok,
        "events_checked": result.events_checked,
        "first_broken_sequence": result.first_broken_sequence,
    }
