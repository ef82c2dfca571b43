"""Review pages: the queue of requests a user can decide, one request, its decisions."""

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.roles import CATALOG_READERS, Role
from apps.accounts.selectors import user_team_ids
from apps.catalog.selectors import last_approved_before, version_diff
from apps.common.exceptions import ApplicationError
from apps.common.exceptions import PermissionDenied as PermissionDeniedError
from apps.common.views import raise_for_http, safe_next
from apps.evaluation.review import evaluation_gate_panel
from apps.workflows.forms import DecisionForm
from apps.workflows.models import ApprovalRequest, Decision, RequestStatus, SubjectKind
from apps.workflows.selectors import approval_request_get, approval_request_list, review_queue
from apps.workflows.services import (
    POLICY_EDITORS,
    approval_decision_record,
    approval_gate_verdict,
    approval_request_can_decide,
    approval_request_withdraw,
)


def _may_review_anything(request: HttpRequest) -> bool:
    return bool(user_team_ids(request.user, {*CATALOG_READERS, Role.GOVERNANCE}))


def _reason_display(approval: ApprovalRequest, user: Any, decisions: list) -> str:
    """Why this user cannot decide, in their language (the engine says whether they can)."""
    if approval.status != RequestStatus.OPEN:
        return _("This request is already closed: %(status)s.") % {"status": approval.get_status_display()}
    if approval.requested_by_id == user.pk:
        return _("You requested this change: someone else must review it (four eyes).")
    if any(d.reviewer_id == user.pk for d in decisions):
        return _("You have already decided on this request.")
    return _("Only the %(role)s role of this team can decide.") % {
        "role": approval.get_approver_role_display()
    }


def review_context(request: HttpRequest, approval: ApprovalRequest | None) -> dict[str, Any]:
    """What a page needs to show an approval request and, if the engine allows it, the decision form."""
    if approval is None:
        return {"approval": None}
    decisions = list(approval.decisions.select_related("reviewer"))
    can_decide, _reason = approval_request_can_decide(request=approval, user=request.user)
    gate = evaluation_gate_panel(approval=approval) if approval.status == RequestStatus.OPEN else None
    return {
        "gate": gate,
        # The engine refuses an approval while the gate is not passed: the button says so beforehand.
        "approve_blocked": gate is not None and not gate.passed,
        "approval": approval,
        "decisions": decisions,
        "approvals_count": sum(1 for d in decisions if d.decision == Decision.APPROVE),
        "can_decide": can_decide,
        "decide_reason": "" if can_decide else _reason_display(approval, request.user, decisions),
        "decision_form": DecisionForm() if can_decide else None,
        "is_requester": approval.requested_by_id == request.user.pk,
    }


# What each kind of subject shows on the request page: a link and the content compared.


def _version_subject(approval: ApprovalRequest) -> dict[str, Any]:
    version = approval.subject
    prompt = version.prompt
    baseline = last_approved_before(version=version)
    return {
        "subject_url": reverse(
            "catalog:version",
            kwargs={"team": prompt.team.slug, "name": prompt.name, "number": version.number},
        ),
        "subject_title": _("%(prompt)s, version %(number)s") % {"prompt": prompt, "number": version.number},
        "version": version,
        "baseline": baseline,
        "diff_rows": version_diff(old=baseline, new=version),
    }


def _label_move_subject(approval: ApprovalRequest) -> dict[str, Any]:
    move = approval.subject
    prompt = move.prompt
    return {
        "subject_url": reverse("catalog:prompt", kwargs={"team": prompt.team.slug, "name": prompt.name}),
        "subject_title": _("Move %(label)s of %(prompt)s to v%(number)s")
        % {"label": move.label, "prompt": prompt, "number": move.version.number},
        "move": move,
        "version": move.version,
        "baseline": move.previous_version,
        "diff_rows": version_diff(old=move.previous_version, new=move.version),
    }


SUBJECT_VIEWS: dict[str, Callable[[ApprovalRequest], dict[str, Any]]] = {
    SubjectKind.PROMPT_VERSION: _version_subject,
    SubjectKind.LABEL_MOVE: _label_move_subject,
}


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    if not _may_review_anything(request):
        raise PermissionDenied(_("You hold no role that reviews or requests changes."))
    mine = approval_request_list(user=request.user, status=RequestStatus.OPEN).filter(
        requested_by=request.user
    )
    return render(
        request,
        "workflows/queue.html",
        {
            "queue": list(review_queue(user=request.user)),
            "mine": list(mine),
            "sets_policies": bool(user_team_ids(request.user, POLICY_EDITORS)),
        },
    )


def _approval(request: HttpRequest, request_id: int) -> ApprovalRequest:
    approval = approval_request_get(user=request.user, request_id=request_id)
    if approval is None:
        raise Http404
    return approval


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval(request, request_id)
    subject = SUBJECT_VIEWS.get(approval.subject_kind, lambda a: {})(approval)
    context = {"next_url": request.get_full_path(), **subject, **review_context(request, approval)}
    return render(request, "workflows/request_detail.html", context)


@login_required
@require_POST
def decide(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval(request, request_id)
    back = safe_next(request, reverse("workflows:request", args=[approval.pk]))
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("Choose approve, request changes or reject."))
        return redirect(back)
    try:
        approval_decision_record(
            request_id=approval.pk,
            reviewer=request.user,
            decision=form.cleaned_data["decision"],
            comment=form.cleaned_data["comment"],
        )
    except PermissionDeniedError:
        # The engine refused (four eyes, or not a reviewer): say why in the user's language.
        decisions = list(approval.decisions.all())
        raise PermissionDenied(_reason_display(approval, request.user, decisions)) from None
    except ApplicationError as exc:
        raise_for_http(exc)
        if exc.code == "evaluation_gate_failed":
            reason = approval_gate_verdict(request=approval)
            messages.error(
                request,
                _("Not approved: the evaluation gate has not passed. %(reason)s")
                % {"reason": reason.reason if reason is not None else ""},
            )
        else:
            messages.error(request, exc.message)
        return redirect(back)
    approval.refresh_from_db()
    summary = {"summary": approval.summary}
    if approval.status == RequestStatus.OPEN:
        messages.success(
            request, _("Your approval of %(summary)s is recorded; more approvals are needed.") % summary
        )
    elif approval.status == RequestStatus.APPROVED:
        messages.success(request, _("You approved %(summary)s.") % summary)
    elif approval.status == RequestStatus.CHANGES_REQUESTED:
        messages.warning(request, _("You requested changes to %(summary)s.") % summary)
    else:
        messages.warning(request, _("You rejected %(summary)s.") % summary)
    return redirect(back)


@login_required
@require_POST
def withdraw(request: HttpRequest, request_id: int) -> HttpResponse:
    approval = _approval(request, request_id)
    back = safe_next(request, reverse("workflows:request", args=[approval.pk]))
    try:
        approval_request_withdraw(request_id=approval.pk, actor=request.user)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.info(request, _("You withdrew the request: %(summary)s.") % {"summary": approval.summary})
    return redirect(back)
