"""Approval policies of a team, set by its governance: how many approvals each kind of change needs, from
which role, and whether (with which thresholds) a passed evaluation is required."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_safe

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_by_slug, user_has_role
from apps.common.exceptions import ApplicationError
from apps.common.views import raise_for_http
from apps.workflows.forms import THRESHOLDS_EXAMPLE, ApprovalPolicyForm
from apps.workflows.models import ApprovalPolicy, SubjectKind
from apps.workflows.selectors import approval_policy_table
from apps.workflows.services import GATED_KINDS, POLICY_EDITORS, approval_policy_change, approval_policy_for


@login_required
@require_safe
def policy_list(request: HttpRequest) -> HttpResponse:
    table = approval_policy_table(user=request.user, roles=POLICY_EDITORS)
    if not table:
        raise PermissionDenied(_("Only governance sets approval policies."))
    return render(request, "workflows/policy_list.html", {"table": table, "gated_kinds": sorted(GATED_KINDS)})


def _governed_team(request: HttpRequest, slug: str) -> Team:
    """404 outside the user's teams, 403 for a member without the governance role."""
    team = team_get_by_slug(user=request.user, slug=slug)
    if team is None:
        raise Http404
    if not user_has_role(request.user, team.pk, POLICY_EDITORS):
        raise PermissionDenied(_("Only the governance role of this team sets its approval policies."))
    return team


def _initial(policy: ApprovalPolicy) -> dict[str, Any]:
    return {
        "approvals_required": policy.approvals_required,
        "approver_role": policy.approver_role,
        "requires_evaluation": policy.requires_evaluation,
        "evaluation_thresholds": policy.evaluation_thresholds or {},
        "cost_threshold": policy.cost_threshold,
        "approvals_above_threshold": policy.approvals_above_threshold,
    }


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def policy_edit(request: HttpRequest, team: str, kind: str) -> HttpResponse:
    governed = _governed_team(request, team)
    if kind not in SubjectKind.values:
        raise Http404
    current = approval_policy_for(subject_kind=kind, team=governed)
    if request.method == "POST":
        form = ApprovalPolicyForm(request.POST, subject_kind=kind)
        if form.is_valid():
            data = form.cleaned_data
            try:
                approval_policy_change(
                    actor=request.user,
                    team=governed,
                    subject_kind=kind,
                    approvals_required=data["approvals_required"],
                    approver_role=data["approver_role"],
                    requires_evaluation=data.get("requires_evaluation", False),
                    evaluation_thresholds=data.get("evaluation_thresholds") or {},
                    cost_threshold=data.get("cost_threshold"),
                    approvals_above_threshold=data.get("approvals_above_threshold"),
                )
            except ApplicationError as exc:
                raise_for_http(exc)
                for field, problems in exc.details.items():
                    if field in form.fields:
                        form.add_error(field, problems)
                if not form.errors:
                    form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    _("Approval policy for %(kind)s in %(team)s saved.")
                    % {"kind": SubjectKind(kind).label, "team": governed.slug},
                )
                return redirect("workflows:policies")
    else:
        form = ApprovalPolicyForm(initial=_initial(current), subject_kind=kind)
    return render(
        request,
        "workflows/policy_form.html",
        {
            "team": governed,
            "kind": kind,
            "kind_label": SubjectKind(kind).label,
            "current": current,
            "form": form,
            "thresholds_example": THRESHOLDS_EXAMPLE,
        },
    )
