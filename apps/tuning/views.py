"""Tuning pages: the requests of the user's teams, a new request, one request with its job's progress."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.roles import REGISTRY_READERS, REGISTRY_WRITERS
from apps.accounts.selectors import user_has_role, user_team_ids
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import paginate, raise_for_http
from apps.registry.selectors import adapter_list
from apps.tuning.forms import TuningRequestForm
from apps.tuning.models import TUNING_ACTIVE, TuningRequest, TuningStatus
from apps.tuning.selectors import tuning_request_get, tuning_request_list
from apps.tuning.services import tuning_request_cancel, tuning_request_create, tuning_request_submit
from apps.workflows.services import approval_subject_request


def _request(request: HttpRequest, request_id: int) -> TuningRequest:
    try:
        return tuning_request_get(user=request.user, request_id=request_id)
    except NotFound:
        raise Http404 from None


@login_required
def request_list(request: HttpRequest) -> HttpResponse:
    if not user_team_ids(request.user, REGISTRY_READERS):
        raise PermissionDenied(_("Tuning is for administrators, governance, engineers and product owners."))
    status = request.GET.get("status", "")
    queryset = tuning_request_list(user=request.user, status=status if status in TuningStatus.values else "")
    return render(
        request,
        "tuning/list.html",
        {
            "page": paginate(request, queryset),
            "statuses": TuningStatus.choices,
            "status": status,
            "can_request": bool(user_team_ids(request.user, REGISTRY_WRITERS)),
        },
    )


@login_required
def request_new(request: HttpRequest) -> HttpResponse:
    writable = user_team_ids(request.user, REGISTRY_WRITERS)
    if not writable:
        raise PermissionDenied(_("Only engineers and administrators of a team request tuning."))
    adapters = adapter_list(user=request.user).filter(team_id__in=writable)
    form = TuningRequestForm(
        request.POST or None, adapters=adapters, initial={"adapter": request.GET.get("adapter")}
    )
    if request.method == "POST" and form.is_valid():
        try:
            created = tuning_request_create(actor=request.user, **form.service_arguments())
            if "submit" in request.POST:
                tuning_request_submit(actor=request.user, request=created)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Tuning request #%(id)s saved.") % {"id": created.pk})
            return redirect("tuning:request", request_id=created.pk)
    from apps.feedback.models import Dataset, DatasetKind

    datasets = Dataset.objects.filter(team_id__in=writable, kind=DatasetKind.SFT).select_related("team")
    return render(
        request,
        "tuning/form.html",
        {
            "form": form,
            "has_adapters": adapters.exists(),
            "datasets": datasets.defer("content", "lineage")[:100],
        },
    )


def _detail_context(request: HttpRequest, tuning: TuningRequest) -> dict:
    can_write = (
        user_has_role(request.user, tuning.team_id, REGISTRY_WRITERS)
        or tuning.requested_by_id == request.user.pk
    )
    return {
        "tuning": tuning,
        "approval": approval_subject_request(subject=tuning),
        # The job panel refreshes itself from approval (a worker submits the job) until the job has ended.
        "active": tuning.status in (TuningStatus.APPROVED, *TUNING_ACTIVE),
        "can_submit": can_write and tuning.status == TuningStatus.DRAFT,
        "can_cancel": can_write
        and tuning.status in (TuningStatus.DRAFT, TuningStatus.PENDING_APPROVAL, *TUNING_ACTIVE)
        and not tuning.cancel_requested_at,
    }


@login_required
def request_detail(request: HttpRequest, request_id: int) -> HttpResponse:
    tuning = _request(request, request_id)
    context = _detail_context(request, tuning)
    if request.htmx:  # the job panel refreshes itself while the job runs
        if request.GET.get("shown", tuning.status) != tuning.status:
            # The request moved on (queued, running, ended): the whole page changes (its state, its
            # buttons), so the browser reloads it rather than the panel alone.
            return HttpResponse(headers={"HX-Refresh": "true"})
        return render(request, "tuning/partials/job.html", context)
    return render(request, "tuning/detail.html", context)


@login_required
@require_POST
def request_submit(request: HttpRequest, request_id: int) -> HttpResponse:
    tuning = _request(request, request_id)
    try:
        approval = tuning_request_submit(actor=request.user, request=tuning)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Sent for approval (request #%(id)s).") % {"id": approval.pk})
    return redirect("tuning:request", request_id=tuning.pk)


@login_required
@require_POST
def request_cancel(request: HttpRequest, request_id: int) -> HttpResponse:
    tuning = _request(request, request_id)
    try:
        tuning = tuning_request_cancel(actor=request.user, request=tuning)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        if tuning.status == TuningStatus.CANCELLED:
            messages.success(request, _("Tuning request cancelled."))
        else:
            messages.info(
                request, _("Asked the job to stop; it shows as cancelled once the provider confirms.")
            )
    return redirect("tuning:request", request_id=tuning.pk)
