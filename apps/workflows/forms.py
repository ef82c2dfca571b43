from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import Role
from apps.workflows.models import Decision, SubjectKind
from apps.workflows.services import GATED_KINDS


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(label=_("Decision"), choices=Decision.choices, widget=forms.RadioSelect)
    comment = forms.CharField(
        label=_("Comment"),
        required=False,
        max_length=5000,
        help_text=_("Say what should change when you request changes or reject."),
        widget=forms.Textarea(attrs={"rows": 4}),
    )


THRESHOLDS_EXAMPLE = (
    '{"pass_rate": {"min": 0.9}, "judge_mean": {"min": 4}, "latency_p95_ms": {"max": 2000}, '
    '"cost_per_case": {"max": 0.01}, "max_regression": {"pass_rate": 0.05}}'
)


class ApprovalPolicyForm(forms.Form):
    """A team's policy for one kind of subject. The evaluation fields only for kinds that can be evaluated,
    the cost rule only for tuning requests."""

    approvals_required = forms.IntegerField(
        label=_("Approvals required"),
        min_value=1,
        max_value=10,
        widget=forms.NumberInput(attrs={"inputmode": "numeric"}),
    )
    approver_role = forms.ChoiceField(label=_("Approver role"), choices=Role.choices)
    requires_evaluation = forms.BooleanField(
        label=_("Require a passed evaluation"),
        required=False,
        help_text=_(
            "Approval is refused until an evaluation run on exactly this content has passed every golden set "
            "with the thresholds below."
        ),
    )
    evaluation_thresholds = forms.JSONField(
        label=_("Evaluation thresholds (JSON)"),
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "spellcheck": "false", "class": "mono"}),
        help_text=_(
            "One entry per gate metric, with its minimum (pass_rate, judge_mean, rouge_l_mean, …) or maximum "
            "(latency_p95_ms, cost_per_case, error_rate, …), and max_regression: how much worse than the "
            "version in production a run may be (δ, per metric, or one number for pass rate and judge mean)."
        ),
    )
    cost_threshold = forms.DecimalField(
        label=_("Cost threshold"), required=False, min_value=0, max_digits=12, decimal_places=2
    )
    approvals_above_threshold = forms.IntegerField(
        label=_("Approvals above the threshold"), required=False, min_value=1, max_value=10
    )

    def __init__(self, *args: Any, subject_kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subject_kind = subject_kind
        if subject_kind not in GATED_KINDS:
            del self.fields["requires_evaluation"], self.fields["evaluation_thresholds"]
        if subject_kind != SubjectKind.TUNING_REQUEST:
            del self.fields["cost_threshold"], self.fields["approvals_above_threshold"]

    def clean_evaluation_thresholds(self) -> dict[str, Any]:
        value = self.cleaned_data.get("evaluation_thresholds")
        if value in (None, ""):
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError(_("Write a JSON object, as in the example."))
        return value
