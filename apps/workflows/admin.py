from django.contrib import admin

from apps.workflows.models import ApprovalPolicy
from apps.workflows.services import approval_policy_set


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    """Policies change through the service, so every change is audited."""

    list_display = ("subject_kind", "team", "approvals_required", "approver_role", "requires_evaluation")
    list_filter = ("subject_kind", "team")

    def save_model(self, request, obj, form, change):
        saved = approval_policy_set(
            actor=request.user,
            subject_kind=obj.subject_kind,
            team=obj.team,
            approvals_required=obj.approvals_required,
            approver_role=obj.approver_role,
            requires_evaluation=obj.requires_evaluation,
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        return False
