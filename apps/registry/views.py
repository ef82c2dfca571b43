"""Registry pages: base models and adapters, an adapter with its versions, aliases and their moves."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from apps.accounts.roles import REGISTRY_READERS, REGISTRY_WRITERS
from apps.accounts.selectors import team_list, user_has_role, user_team_ids
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import raise_for_http
from apps.registry.forms import AdapterForm, AdapterVersionForm, AliasMoveForm, BaseModelForm
from apps.registry.models import Adapter
from apps.registry.selectors import adapter_get, adapter_list, adapter_versions, alias_moves, base_model_list
from apps.registry.services import (
    adapter_create,
    adapter_version_register,
    alias_move_request,
    base_model_register,
)
from apps.workflows.services import approval_subject_request


def _require_reader(request: HttpRequest) -> None:
    if not user_team_ids(request.user, REGISTRY_READERS):
        raise PermissionDenied(
            _("The registry is for administrators, governance, engineers and product owners.")
        )


def _adapter(request: HttpRequest, adapter_id: int) -> Adapter:
    try:
        return adapter_get(user=request.user, adapter_id=adapter_id)
    except NotFound:
        raise Http404 from None


@login_required
def index(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    writable = set(user_team_ids(request.user, REGISTRY_WRITERS))
    return render(
        request,
        "registry/index.html",
        {
            "base_models": list(base_model_list(user=request.user)),
            "adapters": list(adapter_list(user=request.user)),
            "can_write": bool(writable),
        },
    )


@login_required
def base_model_new(request: HttpRequest) -> HttpResponse:
    teams = team_list(user=request.user, roles=REGISTRY_WRITERS)
    if not teams.exists():
        raise PermissionDenied(_("Only engineers and administrators of a team register its models."))
    form = BaseModelForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        try:
            model = base_model_register(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Base model %(model)s registered.") % {"model": model})
            return redirect("registry:index")
    return render(request, "registry/base_model_form.html", {"form": form})


@login_required
def adapter_new(request: HttpRequest) -> HttpResponse:
    base_models = base_model_list(user=request.user).filter(
        team_id__in=user_team_ids(request.user, REGISTRY_WRITERS)
    )
    if not user_team_ids(request.user, REGISTRY_WRITERS):
        raise PermissionDenied(_("Only engineers and administrators of a team create its adapters."))
    form = AdapterForm(
        request.POST or None, base_models=base_models, initial={"base_model": request.GET.get("base_model")}
    )
    if request.method == "POST" and form.is_valid():
        try:
            adapter = adapter_create(actor=request.user, **form.cleaned_data)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Adapter %(adapter)s created.") % {"adapter": adapter})
            return redirect("registry:adapter", adapter_id=adapter.pk)
    return render(request, "registry/adapter_form.html", {"form": form, "has_models": base_models.exists()})


@login_required
def adapter_detail(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = _adapter(request, adapter_id)
    can_write = user_has_role(request.user, adapter.team_id, REGISTRY_WRITERS)
    moves = alias_moves(adapter=adapter)
    for move in moves:
        move.approval = approval_subject_request(subject=move)
    return render(
        request,
        "registry/adapter_detail.html",
        {
            "adapter": adapter,
            "versions": list(adapter_versions(adapter=adapter)),
            "aliases": list(adapter.aliases.all()),
            "moves": moves,
            "can_write": can_write,
            "alias_form": AliasMoveForm(adapter=adapter) if can_write else None,
        },
    )


@login_required
def version_new(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = _adapter(request, adapter_id)
    if not user_has_role(request.user, adapter.team_id, REGISTRY_WRITERS):
        raise PermissionDenied(_("Only engineers and administrators of the team register versions."))
    form = AdapterVersionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            version = adapter_version_register(actor=request.user, adapter=adapter, **form.cleaned_data)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Version %(number)s registered.") % {"number": version.number})
            return redirect("registry:adapter", adapter_id=adapter.pk)
    return render(request, "registry/version_form.html", {"form": form, "adapter": adapter})


@login_required
def alias_move(request: HttpRequest, adapter_id: int) -> HttpResponse:
    adapter = _adapter(request, adapter_id)
    if request.method != "POST":
        return redirect("registry:adapter", adapter_id=adapter.pk)
    if not user_has_role(request.user, adapter.team_id, REGISTRY_WRITERS):
        raise PermissionDenied(_("Only engineers and administrators of the team move aliases."))
    form = AliasMoveForm(request.POST, adapter=adapter)
    if not form.is_valid():
        messages.error(request, " ".join(str(e) for errors in form.errors.values() for e in errors))
        return redirect("registry:adapter", adapter_id=adapter.pk)
    try:
        result = alias_move_request(
            actor=request.user,
            adapter=adapter,
            alias=form.cleaned_data["alias"].strip(),
            version_number=form.cleaned_data["version"],
            reason=form.cleaned_data["reason"],
        )
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return redirect("registry:adapter", adapter_id=adapter.pk)
    messages.success(
        request,
        _("Move of %(alias)s sent for approval (request #%(id)s).")
        % {"alias": result.move.alias, "id": result.request.pk},
    )
    return redirect("registry:adapter", adapter_id=adapter.pk)
