"""Deployment pages: endpoints with their traffic split and history, a deployment request and its
approval, and the one-click promote and roll back (POST only)."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.roles import REGISTRY_READERS
from apps.accounts.selectors import team_list, user_has_role, user_team_ids
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import raise_for_http, safe_next
from apps.tuning.deployment_selectors import (
    deployable_versions,
    deployment_annotate,
    deployment_get,
    deployment_list,
    endpoint_get,
    endpoint_history,
    endpoint_list,
)
from apps.tuning.deployments import (
    DEPLOYMENT_OPERATORS,
    DEPLOYMENT_REQUESTERS,
    ON_ENDPOINT,
    deployment_create,
    deployment_promote,
    deployment_rollback,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.forms_deployments import DeploymentForm, EndpointForm
from apps.tuning.models import Deployment, DeploymentStatus, DeploymentStrategy, Endpoint


def _require_reader(request: HttpRequest) -> None:
    if not user_team_ids(request.user, REGISTRY_READERS):
        raise PermissionDenied(
            _("Deployments are for administrators, governance, engineers and product owners.")
        )


def _endpoint(request: HttpRequest, endpoint_id: int) -> Endpoint:
    try:
        return endpoint_get(user=request.user, endpoint_id=endpoint_id)
    except NotFound:
        raise Http404 from None


def _deployment(request: HttpRequest, deployment_id: int) -> Deployment:
    try:
        return deployment_get(user=request.user, deployment_id=deployment_id)
    except NotFound:
        raise Http404 from None


@login_required
def index(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    writable = team_list(user=request.user, roles=DEPLOYMENT_REQUESTERS)
    return render(
        request,
        "deployments/index.html",
        {
            "endpoints": list(endpoint_list(user=request.user)),
            "deployments": list(deployment_list(user=request.user)[:25]),
            "can_write": writable.exists(),
            "endpoint_form": EndpointForm(teams=writable) if writable.exists() else None,
        },
    )


@login_required
@require_POST
def endpoint_new(request: HttpRequest) -> HttpResponse:
    teams = team_list(user=request.user, roles=DEPLOYMENT_REQUESTERS)
    if not teams.exists():
        raise PermissionDenied(_("Only engineers and administrators of a team create its endpoints."))
    form = EndpointForm(request.POST, teams=teams)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("deployments:index")
    try:
        endpoint = endpoint_create(actor=request.user, **form.cleaned_data)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return redirect("deployments:index")
    messages.success(request, _("Endpoint %(name)s created.") % {"name": endpoint.name})
    return redirect("deployments:endpoint", endpoint_id=endpoint.pk)


@login_required
def endpoint_detail(request: HttpRequest, endpoint_id: int) -> HttpResponse:
    endpoint = _endpoint(request, endpoint_id)
    history = endpoint_history(endpoint=endpoint)
    by_model = {d.deployed_model_id: d for d in history if d.deployed_model_id and d.status in ON_ENDPOINT}
    split = [
        {"deployed_model_id": key, "percent": int(value), "deployment": by_model.get(key)}
        for key, value in sorted(endpoint.traffic_split.items(), key=lambda kv: -int(kv[1]))
    ]
    return render(
        request,
        "deployments/endpoint_detail.html",
        {
            "endpoint": endpoint,
            "split": split,
            "history": history,
            "can_request": user_has_role(request.user, endpoint.team_id, DEPLOYMENT_REQUESTERS),
            "can_operate": user_has_role(request.user, endpoint.team_id, DEPLOYMENT_OPERATORS),
        },
    )


@login_required
def deployment_new(request: HttpRequest) -> HttpResponse:
    team_ids = user_team_ids(request.user, DEPLOYMENT_REQUESTERS)
    if not team_ids:
        raise PermissionDenied(_("Only engineers and administrators of a team request its deployments."))
    endpoints = endpoint_list(user=request.user).filter(team_id__in=team_ids)
    versions = deployable_versions(user=request.user, team_ids=team_ids)
    form = DeploymentForm(
        request.POST or None,
        endpoints=endpoints,
        versions=versions,
        initial={"endpoint": request.GET.get("endpoint"), "strategy": "canary", "traffic_percent": 10},
    )
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        if data["strategy"] == DeploymentStrategy.REPLACE:
            data["traffic_percent"] = None  # a replace takes 100 %, whatever the field says
        try:
            deployment = deployment_create(actor=request.user, **data)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, _("Deployment #%(id)s drafted: submit it for approval.") % {"id": deployment.pk}
            )
            return redirect("deployments:detail", deployment_id=deployment.pk)
    return render(
        request,
        "deployments/deployment_form.html",
        {"form": form, "has_endpoints": endpoints.exists(), "has_versions": versions.exists()},
    )


@login_required
def deployment_detail(request: HttpRequest, deployment_id: int) -> HttpResponse:
    deployment = deployment_annotate(_deployment(request, deployment_id))
    return render(
        request,
        "deployments/deployment_detail.html",
        {
            "deployment": deployment,
            "can_submit": deployment.status == DeploymentStatus.DRAFT
            and (
                deployment.requested_by_id == request.user.pk
                or user_has_role(request.user, deployment.team_id, DEPLOYMENT_REQUESTERS)
            ),
            "can_operate": user_has_role(request.user, deployment.team_id, DEPLOYMENT_OPERATORS),
        },
    )


def _act(request: HttpRequest, deployment_id: int, action: str) -> HttpResponse:
    deployment = _deployment(request, deployment_id)
    fallback = redirect("deployments:detail", deployment_id=deployment.pk).url
    try:
        if action == "submit":
            approval = deployment_submit(actor=request.user, deployment=deployment)
            message = _("Sent for approval (request #%(id)s).") % {"id": approval.pk}
        elif action == "promote":
            deployment_promote(actor=request.user, deployment=deployment)
            message = _(
                "Promotion of deployment #%(id)s under way: it takes all the traffic once the provider is done."
            ) % {"id": deployment.pk}
        else:
            deployment_rollback(actor=request.user, deployment=deployment)
            message = _(
                "Rollback of deployment #%(id)s under way: the previous split is back once the provider is done."
            ) % {"id": deployment.pk}
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, message)
    return redirect(safe_next(request, fallback))


@login_required
@require_POST
def submit(request: HttpRequest, deployment_id: int) -> HttpResponse:
    return _act(request, deployment_id, "submit")


@login_required
@require_POST
def promote(request: HttpRequest, deployment_id: int) -> HttpResponse:
    return _act(request, deployment_id, "promote")


@login_required
@require_POST
def rollback(request: HttpRequest, deployment_id: int) -> HttpResponse:
    return _act(request, deployment_id, "rollback")
