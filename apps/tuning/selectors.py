"""Reads of tuning requests, narrowed to the teams where the user may read the registry."""

from django.db.models import QuerySet

from apps.accounts.models import User
from apps.accounts.roles import REGISTRY_READERS
from apps.accounts.selectors import user_team_ids
from apps.common.exceptions import NotFound
from apps.tuning.models import TuningRequest


def tuning_request_list(
    *, user: User, team_id: int | None = None, status: str = "", adapter_id: int | None = None
) -> QuerySet[TuningRequest]:
    qs = TuningRequest.objects.filter(team_id__in=user_team_ids(user, REGISTRY_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if status:
        qs = qs.filter(status=status)
    if adapter_id is not None:
        qs = qs.filter(adapter_id=adapter_id)
    return qs.select_related(
        "team", "adapter__team", "adapter__base_model", "requested_by", "result_version"
    ).order_by("-created_at", "-pk")


def tuning_request_get(*, user: User, request_id: int) -> TuningRequest:
    request = tuning_request_list(user=user).filter(pk=request_id).first()
    if request is None:
        raise NotFound(f"No tuning request {request_id}.")
    return request


def tuning_requests_undispatched(*, older_than_seconds: int = 60, limit: int = 200) -> list[int]:
    """Approved requests that still have no job a while after approval (the dispatch could not be queued,
    or its task was lost): for the poller to queue again. Dispatching is idempotent (the job key)."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        TuningRequest.objects.filter(status="approved", job_name="", decided_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:limit]
    )
