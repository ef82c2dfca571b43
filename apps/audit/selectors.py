from datetime import datetime

from django.db.models import Q, QuerySet

from apps.accounts.models import User
from apps.accounts.roles import AUDIT_READERS, Role
from apps.accounts.selectors import user_team_ids
from apps.audit.models import AuditEvent, AuditVerification


def audit_event_list(
    *,
    user: User,
    team_id: int | None = None,
    action: str = "",
    actor: str = "",
    target_type: str = "",
    target_id: str = "",
    since: datetime | None = None,
    until: datetime | None = None,
    search: str = "",
) -> QuerySet[AuditEvent]:
    """Events of the teams where the user reads the audit trail; team-less events (sign-ins)
    for administrators."""
    teams = user_team_ids(user, AUDIT_READERS)
    visible = Q(team_id__in=teams)
    if user_team_ids(user, [Role.ADMIN]):
        visible |= Q(team_id__isnull=True)
    qs = AuditEvent.objects.filter(visible) if teams else AuditEvent.objects.none()
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if action:
        qs = qs.filter(action__startswith=action) if action.endswith(".") else qs.filter(action=action)
    if actor:
        qs = qs.filter(actor_username=actor)
    if target_type:
        qs = qs.filter(target_type=target_type)
    if target_id:
        qs = qs.filter(target_id=target_id)
    if since is not None:
        qs = qs.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    if search:
        qs = qs.filter(Q(target_repr__icontains=search) | Q(action__icontains=search))
    return qs.order_by("-sequence")


def audit_can_read(*, user: User) -> bool:
    return bool(user_team_ids(user, AUDIT_READERS))


def audit_last_verification() -> AuditVerification | None:
    return AuditVerification.objects.order_by("-checked_at").first()
