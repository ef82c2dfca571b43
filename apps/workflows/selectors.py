from collections.abc import Iterable

from django.contrib.contenttypes.models import ContentType
from django.db.models import Exists, Model, OuterRef, Prefetch, Q, QuerySet

from apps.accounts.models import Team, User
from apps.accounts.roles import CATALOG_READERS
from apps.accounts.selectors import user_team_ids, user_team_roles
from apps.workflows.models import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    Decision,
    RequestStatus,
    SubjectKind,
)


def approval_request_list(
    *, user: User, status: str | None = None, team_id: int | None = None
) -> QuerySet[ApprovalRequest]:
    qs = ApprovalRequest.objects.filter(team_id__in=user_team_ids(user, CATALOG_READERS)).select_related(
        "team", "requested_by", "content_type"
    )
    if status:
        qs = qs.filter(status=status)
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    return qs.order_by("-created_at", "-id")


def review_queue(*, user: User) -> QuerySet[ApprovalRequest]:
    """Open requests this user can decide now: in a team where they hold the approver role, not their
    own, not already decided by them."""
    can_approve = Q(pk__in=[])
    for team_id, roles in user_team_roles(user).items():
        can_approve |= Q(team_id=team_id, approver_role__in=roles)
    return (
        ApprovalRequest.objects.filter(can_approve, status=RequestStatus.OPEN)
        .exclude(requested_by=user)
        .exclude(Exists(ApprovalDecision.objects.filter(request=OuterRef("pk"), reviewer=user)))
        .select_related("team", "requested_by")
        .order_by("created_at", "id")
    )


def approval_request_get(*, user: User, request_id: int) -> ApprovalRequest | None:
    return approval_request_list(user=user).filter(pk=request_id).first()


def approval_requests_unnotified(*, older_than_seconds: int = 60, limit: int = 200) -> list[int]:
    """Open requests whose reviewers were never told (the notification could not be queued): for beat."""
    from datetime import timedelta

    from django.utils import timezone

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        ApprovalRequest.objects.filter(
            status=RequestStatus.OPEN, reviewers_notified_at__isnull=True, created_at__lt=cutoff
        ).values_list("pk", flat=True)[:limit]
    )


def approval_latest_requests(*, model: type[Model], object_ids: Iterable[int]) -> dict[int, ApprovalRequest]:
    """The latest approval request of each of these subjects (what approval_subject_request gives for one),
    in one query, each with its approvals prefetched as `approvals` (reviewer included): for lists."""
    ids = list(object_ids)
    if not ids:
        return {}
    requests = (
        ApprovalRequest.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_id__in=ids
        )
        .order_by("object_id", "-created_at", "-id")
        .prefetch_related(
            Prefetch(
                "decisions",
                queryset=ApprovalDecision.objects.filter(decision=Decision.APPROVE).select_related(
                    "reviewer"
                ),
                to_attr="approvals",
            )
        )
    )
    latest: dict[int, ApprovalRequest] = {}
    for request in requests:
        latest.setdefault(request.object_id, request)
    return latest


def approval_policy_table(*, user: User, roles: Iterable[str]) -> list[tuple[Team, list[ApprovalPolicy]]]:
    """For each team where the user holds one of `roles`, the policy in force for every kind of subject
    (the team's own, the global one or the default), in two queries."""
    teams = list(Team.objects.filter(pk__in=user_team_ids(user, roles)).order_by("slug"))
    rows = ApprovalPolicy.objects.filter(Q(team__in=teams) | Q(team__isnull=True))
    own = {(p.team_id, p.subject_kind): p for p in rows if p.team_id is not None}
    global_ = {p.subject_kind: p for p in rows if p.team_id is None}
    table = []
    for team in teams:
        policies = []
        for kind in SubjectKind.values:
            policy = own.get((team.pk, kind)) or global_.get(kind) or ApprovalPolicy(subject_kind=kind)
            policies.append(policy)
        table.append((team, policies))
    return table
