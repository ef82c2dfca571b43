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
