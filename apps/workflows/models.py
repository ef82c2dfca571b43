"""The one approval engine: policies, requests and decisions, for every kind of subject."""

from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.accounts.roles import Role
from apps.common.models import BaseModel


class SubjectKind(models.TextChoices):
    PROMPT_VERSION = "prompt_version", _("Prompt version")
    LABEL_MOVE = "label_move", _("Protected label move")
    BUDGET_RAISE = "budget_raise", _("Budget raise")
    ALIAS_MOVE = "alias_move", _("Adapter alias move")
    TUNING_REQUEST = "tuning_request", _("Tuning request")
    DEPLOYMENT = "deployment", _("Deployment request")


class ApprovalPolicy(BaseModel):
    """How many approvals a kind of subject needs, and from whom. A team policy overrides the global one."""

    subject_kind = models.CharField(max_length=40, choices=SubjectKind.choices)
    team = models.ForeignKey(Team, on_delete=models.CASCADE, null=True, blank=True, related_name="policies")
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_role = models.CharField(max_length=32, choices=Role.choices, default=Role.GOVERNANCE)
    requires_evaluation = models.BooleanField(default=False)
    # What a passing evaluation run must show (apps/evaluation/gate.py), e.g.
    # {"pass_rate": {"min": 0.9}, "judge_mean": {"min": 4}, "max_regression": 0.05}.
    evaluation_thresholds = models.JSONField(default=dict, blank=True)
    # Subjects that cost money (tuning jobs): above this estimate, ask for more approvals.
    cost_threshold = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    approvals_above_threshold = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["subject_kind", "team"], name="policy_unique_per_team"),
            models.UniqueConstraint(
                fields=["subject_kind"], condition=Q(team__isnull=True), name="policy_unique_global"
            ),
            models.CheckConstraint(
                condition=Q(approvals_required__gte=1), name="policy_at_least_one_approval"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject_kind} @ {self.team or 'global'}"

    def approvals_for(self, cost: "Decimal | None") -> int:
        """How many approvals a subject of this cost needs (the cost rule only ever asks for more)."""
        if (
            cost is not None
            and self.cost_threshold is not None
            and self.approvals_above_threshold
            and cost > self.cost_threshold
        ):
            return max(self.approvals_required, self.approvals_above_threshold)
        return self.approvals_required


class RequestStatus(models.TextChoices):
    OPEN = "open", _("Open")
    APPROVED = "approved", _("Approved")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class ApprovalRequest(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="approval_requests")
    subject_kind = models.CharField(max_length=40, choices=SubjectKind.choices)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT)
    object_id = models.PositiveBigIntegerField()
    subject = GenericForeignKey("content_type", "object_id")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=20, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    approver_role = models.CharField(max_length=32, choices=Role.choices, default=Role.GOVERNANCE)
    summary = models.CharField(max_length=300)
    closed_at = models.DateTimeField(null=True, blank=True)
    reviewers_notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id"],
                condition=Q(status="open"),
                name="one_open_request_per_subject",
            ),
        ]
        indexes = [models.Index(fields=["team", "status"])]

    def __str__(self) -> str:
        return f"#{self.pk} {self.summary}"


class Decision(models.TextChoices):
    APPROVE = "approve", _("Approve")
    REQUEST_CHANGES = "request_changes", _("Request changes")
    REJECT = "reject", _("Reject")


class ApprovalDecision(BaseModel):
    request = models.ForeignKey(ApprovalRequest, on_delete=models.CASCADE, related_name="decisions")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    decision = models.CharField(max_length=20, choices=Decision.choices)
    comment = models.TextField(blank=True, max_length=5000)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["request", "reviewer"], name="one_decision_per_reviewer")
        ]

    def __str__(self) -> str:
        return f"{self.reviewer} {self.decision} #{self.request_id}"
