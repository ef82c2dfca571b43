from django import forms
from django.contrib import admin

from apps.evaluation.gate import validate_thresholds
from apps.workflows.models import ApprovalPolicy
from apps.workflows.services import approval_policy_set


class ApprovalPolicyAdminForm(forms.ModelForm):
    class Meta:
        model = ApprovalPolicy
        fields = (
            "subject_kind",
            "team",
            "approvals_required",
            "approver_role",
            "requires_evaluation",
            "evaluation_thresholds",
            "cost_threshold",
            "approvals_above_threshold",
        )

    def clean_evaluation_thresholds(self):
        try:
            return validate_thresholds(self.cleaned_data.get("evaluation_thresholds") or {})
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(admin.ModelAdmin):
    """Policies change through the service, so every change is audited."""

    form = ApprovalPolicyAdminForm
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
            evaluation_thresholds=obj.evaluation_thresholds,
            cost_threshold=obj.cost_threshold,
            approvals_above_threshold=obj.approvals_above_threshold,
        )
        obj.pk = saved.pk

    def has_delete_permission(self, request, obj=None):
        return False
