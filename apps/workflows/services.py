"""The approval engine. Four eyes: the requester never counts as an approver, whatever roles they hold."""

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import CATALOG_READERS as _VISIBLE_ROLES
from apps.accounts.roles import Role
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.evaluation.gate import validate_thresholds
from apps.workflows.models import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    Decision,
    RequestStatus,
    SubjectKind,
)
from apps.workflows.registry import evaluation_gate, subject_handler


def approval_policy_for(*, subject_kind: str, team: Team) -> ApprovalPolicy:
    """The team's policy, else the global one, else the default (one approval by governance)."""
    policy = (
        ApprovalPolicy.objects.filter(Q(team=team) | Q(team__isnull=True), subject_kind=subject_kind)
        .order_by(models.F("team").asc(nulls_last=True))
        .first()
    )
    return policy or ApprovalPolicy(subject_kind=subject_kind, team=team)


def approval_request_open(
    *,
    subject: models.Model,
    subject_kind: str,
    team: Team,
    requested_by: User,
    summary: str,
    cost: Decimal | None = None,
) -> ApprovalRequest:
    """Open the one request for this subject. Call inside the subject service's transaction. `cost` (an
    estimate, for subjects that spend money) lets the policy ask for more approvals above its threshold."""
    policy = approval_policy_for(subject_kind=subject_kind, team=team)
    approvals_required = policy.approvals_for(cost)
    try:
        with transaction.atomic():
            request = ApprovalRequest.objects.create(
                team=team,
                subject_kind=subject_kind,
                content_type=ContentType.objects.get_for_model(subject),
                object_id=subject.pk,
                requested_by=requested_by,
                approvals_required=approvals_required,
                approver_role=policy.approver_role,
                summary=summary[:300],
            )
    except IntegrityError:
        raise Conflict(
            "This change already has an open approval request.", code="request_already_open"
        ) from None
    audit_event_record(
        actor=requested_by,
        action="workflows.request_opened",
        target=request,
        team=team,
        changes={
            "subject_kind": subject_kind,
            "subject_id": subject.pk,
            "approvals_required": approvals_required,
            "approver_role": policy.approver_role,
            **({"cost": str(cost)} if cost is not None else {}),
        },
    )
    return request


def approval_request_can_decide(*, request: ApprovalRequest, user: User) -> tuple[bool, str]:
    """Whether this user may decide this request now, and if not, the reason (shown in the UI and API)."""
    if request.status != RequestStatus.OPEN:
        return False, f"This request is already {request.get_status_display().lower()}."
    if request.requested_by_id == user.pk:
        return False, "You requested this change: someone else must review it (four eyes)."
    if not user_has_role(user, request.team_id, [request.approver_role]):
        return False, f"Only the {request.get_approver_role_display().lower()} role of this team can decide."
    if request.decisions.filter(reviewer=user).exists():
        return False, "You have already decided on this request."
    return True, ""


def _close(request: ApprovalRequest, status: str, actor: User, comment: str) -> None:
    request.status = status
    request.closed_at = timezone.now()
    request.save(update_fields=["status", "closed_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="workflows.request_closed",
        target=request,
        team=request.team,
        changes={"status": status},
    )
    handler = subject_handler(request.subject_kind)
    subject = handler.model._default_manager.select_for_update().get(pk=request.object_id)
    callback = {
        RequestStatus.APPROVED: handler.on_approved,
        RequestStatus.REJECTED: handler.on_rejected,
        RequestStatus.CHANGES_REQUESTED: handler.on_changes_requested,
        RequestStatus.WITHDRAWN: handler.on_withdrawn,
    }[RequestStatus(status)]
    callback(subject=subject, request=request, actor=actor, comment=comment)


def approval_gate_verdict(*, request: ApprovalRequest) -> Any:
    """The evaluation gate's verdict on the request's subject (None when its policy asks for none)."""
    gate = evaluation_gate()
    if gate is None:
        return None
    handler = subject_handler(request.subject_kind)
    subject = handler.model._default_manager.filter(pk=request.object_id).first()
    if subject is None:
        return None
    return gate(subject_kind=request.subject_kind, subject=subject, team=request.team)


def _check_evaluation_gate(request: ApprovalRequest) -> None:
    verdict = approval_gate_verdict(request=request)
    if verdict is not None and not verdict.passed:
        raise Conflict(
            f"The evaluation gate has not passed: {verdict.reason}",
            code="evaluation_gate_failed",
            details=verdict.as_details(),
        )


@transaction.atomic
def approval_decision_record(
    *, request_id: int, reviewer: User, decision: str, comment: str = ""
) -> ApprovalDecision:
    """Record one reviewer's decision; close the request when it is decided. Concurrent decisions on one
    request are serialised by the row lock; the second sees the first's outcome."""
    if decision not in Decision.values:
        raise Conflict(f"Unknown decision {decision!r}.", code="invalid_decision")
    request = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("team")
        .filter(pk=request_id)
        .first()
    )
    if request is None or not user_has_role(reviewer, request.team_id, _VISIBLE_ROLES):
        raise NotFound("No such approval request.")
    allowed, reason = approval_request_can_decide(request=request, user=reviewer)
    if not allowed:
        if request.status != RequestStatus.OPEN:
            raise Conflict(reason, code="request_closed")
        code = "self_approval" if request.requested_by_id == reviewer.pk else "not_a_reviewer"
        if code == "not_a_reviewer" and request.decisions.filter(reviewer=reviewer).exists():
            raise Conflict(reason, code="already_decided")
        raise PermissionDenied(reason, code=code)
    if decision == Decision.APPROVE:
        _check_evaluation_gate(request)
    record = ApprovalDecision.objects.create(
        request=request, reviewer=reviewer, decision=decision, comment=comment
    )
    audit_event_record(
        actor=reviewer,
        action="workflows.decision_recorded",
        target=request,
        team=request.team,
        changes={"decision": decision, "comment": comment},
    )
    if decision == Decision.REJECT:
        _close(request, RequestStatus.REJECTED, reviewer, comment)
    elif decision == Decision.REQUEST_CHANGES:
        _close(request, RequestStatus.CHANGES_REQUESTED, reviewer, comment)
    elif request.decisions.filter(decision=Decision.APPROVE).count() >= request.approvals_required:
        _close(request, RequestStatus.APPROVED, reviewer, comment)
    return record


@transaction.atomic
def approval_request_withdraw(*, request_id: int, actor: User) -> ApprovalRequest:
    request = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("team")
        .filter(pk=request_id)
        .first()
    )
    if request is None or not user_has_role(actor, request.team_id, _VISIBLE_ROLES):
        raise NotFound("No such approval request.")
    if request.requested_by_id != actor.pk:
        raise PermissionDenied("Only the requester can withdraw a request.", code="not_requester")
    if request.status != RequestStatus.OPEN:
        raise Conflict(
            f"This request is already {request.get_status_display().lower()}.", code="request_closed"
        )
    _close(request, RequestStatus.WITHDRAWN, actor, "")
    return request


def approval_subject_request(*, subject: models.Model) -> ApprovalRequest | None:
    """The latest request about a subject (open or closed)."""
    return (
        ApprovalRequest.objects.filter(
            content_type=ContentType.objects.get_for_model(subject), object_id=subject.pk
        )
        .order_by("-created_at", "-id")
        .first()
    )


@transaction.atomic
def approval_reviewers_notify(*, request_id: int) -> int:
    """E-mail everyone who can decide the request (not the requester). Sends once per request:
    a retried task finds the request already notified and sends nothing."""
    request = (
        ApprovalRequest.objects.select_for_update(of=("self",))
        .select_related("team", "requested_by")
        .filter(pk=request_id)
        .first()
    )
    if request is None or request.reviewers_notified_at is not None or request.status != RequestStatus.OPEN:
        return 0
    recipients = sorted(
        set(
            User.objects.filter(
                memberships__team=request.team, memberships__role=request.approver_role, is_active=True
            )
            .exclude(pk=request.requested_by_id)
            .exclude(email="")
            .values_list("email", flat=True)
        )
    )
    if recipients:
        link = f"{settings.ATALAYA_BASE_URL}{reverse('workflows:request', args=[request.pk])}"
        send_mail(
            subject=f"[Atalaya] Review requested: {request.summary}",
            message=(
                f"{request.requested_by.username} asks for your review of {request.summary} "
                f"in team {request.team.slug}.\n\nOpen it: {link}\n"
            ),
            from_email=None,
            recipient_list=recipients,
        )
    request.reviewers_notified_at = timezone.now()
    request.save(update_fields=["reviewers_notified_at", "updated_at"])
    return len(recipients)


@transaction.atomic
def approval_policy_set(
    *,
    actor: User | None,
    subject_kind: str,
    team: Team | None,
    approvals_required: int,
    approver_role: str,
    requires_evaluation: bool = False,
    evaluation_thresholds: dict[str, Any] | None = None,
    cost_threshold: Decimal | None = None,
    approvals_above_threshold: int | None = None,
) -> ApprovalPolicy:
    """Create or change the policy for a kind of subject in a team (or globally). Open requests keep
    the rule they were opened under (the evaluation gate is checked against the policy at decision time).
    No permission check: for trusted callers (the admin site, the demo seed); people go through
    approval_policy_change."""
    if approvals_required < 1:
        raise Conflict("A policy needs at least one approval.", code="invalid_policy")
    thresholds = _thresholds_valid(subject_kind, requires_evaluation, evaluation_thresholds or {})
    if (cost_threshold is None) != (approvals_above_threshold is None) or (
        cost_threshold is not None and (cost_threshold < 0 or (approvals_above_threshold or 0) < 1)
    ):
        raise Conflict(
            "A cost rule needs both a threshold (≥ 0) and a number of approvals above it (≥ 1).",
            code="invalid_policy",
        )
    policy = ApprovalPolicy.objects.select_for_update().filter(subject_kind=subject_kind, team=team).first()
    before = (
        {
            "approvals_required": policy.approvals_required,
            "approver_role": policy.approver_role,
            "requires_evaluation": policy.requires_evaluation,
            "evaluation_thresholds": policy.evaluation_thresholds,
            "cost_threshold": str(policy.cost_threshold) if policy.cost_threshold is not None else None,
            "approvals_above_threshold": policy.approvals_above_threshold,
        }
        if policy
        else None
    )
    policy = policy or ApprovalPolicy(subject_kind=subject_kind, team=team)
    policy.approvals_required = approvals_required
    policy.approver_role = approver_role
    policy.requires_evaluation = requires_evaluation
    policy.evaluation_thresholds = thresholds
    policy.cost_threshold = cost_threshold
    policy.approvals_above_threshold = approvals_above_threshold
    policy.save()
    audit_event_record(
        actor=actor,
        action="workflows.policy_changed",
        target=policy,
        team=team,
        changes={
            "subject_kind": subject_kind,
            "from": before,
            "to": {
                "approvals_required": approvals_required,
                "approver_role": approver_role,
                "requires_evaluation": requires_evaluation,
                "evaluation_thresholds": thresholds,
                "cost_threshold": str(cost_threshold) if cost_threshold is not None else None,
                "approvals_above_threshold": approvals_above_threshold,
            },
        },
    )
    return policy


# Who sets a team's approval policies, evaluation thresholds included.
POLICY_EDITORS = frozenset({Role.GOVERNANCE})
# The kinds of subject an evaluation gate can hold back: what an evaluation run can be about.
GATED_KINDS = frozenset({SubjectKind.PROMPT_VERSION, SubjectKind.ALIAS_MOVE, SubjectKind.DEPLOYMENT})


def _thresholds_valid(subject_kind: str, requires_evaluation: bool, spec: Any) -> dict[str, Any]:
    """The thresholds, checked by the gate's own validation (422 naming the bad key)."""
    if requires_evaluation and subject_kind not in GATED_KINDS:
        raise Unprocessable(
            "Only prompt versions, adapter alias moves and deployments can require an evaluation.",
            code="invalid_policy",
            details={"requires_evaluation": ["This kind of change has no evaluation runs."]},
        )
    try:
        return validate_thresholds(spec)
    except ValueError as exc:
        raise Unprocessable(
            f"Invalid evaluation thresholds: {exc}",
            code="invalid_thresholds",
            details={"evaluation_thresholds": [str(exc)]},
        ) from None


def approval_policy_change(
    *,
    actor: User,
    team: Team,
    subject_kind: str,
    approvals_required: int,
    approver_role: str,
    requires_evaluation: bool,
    evaluation_thresholds: dict[str, Any],
    cost_threshold: Decimal | None = None,
    approvals_above_threshold: int | None = None,
) -> ApprovalPolicy:
    """A team's policy, changed by its governance (the only role that sets approval policies; the global
    policies are the administrators' site settings)."""
    if not user_has_role(actor, team.pk, POLICY_EDITORS):
        raise PermissionDenied(
            "Only the governance role of this team sets its approval policies.", code="not_governance"
        )
    return approval_policy_set(
        actor=actor,
        subject_kind=subject_kind,
        team=team,
        approvals_required=approvals_required,
        approver_role=approver_role,
        requires_evaluation=requires_evaluation,
        evaluation_thresholds=evaluation_thresholds,
        cost_threshold=cost_threshold,
        approvals_above_threshold=approvals_above_threshold,
    )
