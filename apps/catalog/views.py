"""Catalog pages: the list, a prompt, its versions, the version editor with live preview."""

import json
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import OuterRef, Subquery
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from apps.accounts.roles import CATALOG_AUTHORS, CATALOG_READERS, LABEL_MOVERS, PROTECTED_LABEL_MOVERS
from apps.accounts.selectors import team_list, user_has_role
from apps.catalog.forms import (
    MODEL_SUGGESTIONS,
    ROLE_CHOICES,
    CatalogFilterForm,
    LabelMoveForm,
    PromptCreateForm,
    PromptEditForm,
    VersionForm,
    split_tags,
)
from apps.catalog.models import LabelMoveStatus, Prompt, PromptVersion, VersionStatus
from apps.catalog.selectors import (
    last_approved_before,
    prompt_get,
    prompt_list,
    prompt_render,
    prompt_version_by_number,
    prompt_versions,
    version_diff,
)
from apps.catalog.services import (
    prompt_create,
    prompt_label_set,
    prompt_update,
    prompt_version_create,
    prompt_version_retire,
    prompt_version_submit,
    prompt_version_update,
)
from apps.catalog.templating import TemplateProblem, template_variables
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import paginate, raise_for_http, render_page_or_fragment
from apps.workflows.services import approval_subject_request
from apps.workflows.views import review_context

DEFAULT_PARAMETERS = {"temperature": 0.2}


def _prompt(request: HttpRequest, team: str, name: str) -> Prompt:
    """The prompt, if the user reads the catalog of its team; otherwise 404."""
    try:
        return prompt_get(user=request.user, name=name, team_slug=team)
    except NotFound:
        raise Http404 from None


def _version(prompt: Prompt, number: int) -> PromptVersion:
    try:
        return prompt_version_by_number(prompt=prompt, number=number)
    except NotFound:
        raise Http404 from None


def _require(request: HttpRequest, prompt: Prompt, roles: frozenset[str]) -> None:
    if not user_has_role(request.user, prompt.team_id, roles):
        raise PermissionDenied(_("Your roles in %(team)s do not allow this.") % {"team": prompt.team.slug})


def _service_message(exc: ApplicationError) -> str:
    """The service's refusal, in the user's language where we know its shape."""
    if exc.code == "template_syntax_error":
        return _("Template error in message %(number)s, line %(line)s: %(problem)s") % {
            "number": exc.details.get("message_index", 0) + 1,
            "line": exc.details.get("line") or "?",
            "problem": exc.details.get("problem", ""),
        }
    return exc.message


# The list


@login_required
def prompt_list_view(request: HttpRequest) -> HttpResponse:
    teams = list(team_list(user=request.user, roles=CATALOG_READERS))
    if not teams:
        raise PermissionDenied(_("You do not read the prompt catalog of any team."))
    tags = sorted(
        t
        for t in prompt_list(user=request.user).order_by().values_list("tags__name", flat=True).distinct()
        if t
    )
    form = CatalogFilterForm(request.GET or None, teams=teams, tags=tags)
    latest = PromptVersion.objects.filter(prompt=OuterRef("pk")).order_by("-number")
    prompts = prompt_list(user=request.user, **form.filters()).annotate(
        latest_number=Subquery(latest.values("number")[:1]),
        latest_status=Subquery(latest.values("status")[:1]),
    )
    context = {
        "form": form,
        "page": paginate(request, prompts),
        "can_create": any(user_has_role(request.user, t.pk, CATALOG_AUTHORS) for t in teams),
        "status_labels": dict(VersionStatus.choices),
        "filtered": any(form.filters().values()),
    }
    return render_page_or_fragment(
        request, "catalog/prompt_list.html", "catalog/partials/prompt_results.html", context
    )


@login_required
def prompt_create_view(request: HttpRequest) -> HttpResponse:
    teams = team_list(user=request.user, roles=CATALOG_AUTHORS)
    if not teams.exists():
        raise PermissionDenied(_("Only engineers and administrators of a team create prompts."))
    form = PromptCreateForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            prompt = prompt_create(
                actor=request.user,
                team=data["team"],
                name=data["name"],
                description=data["description"],
                tags=split_tags(data["tags"]),
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(
                request, _("Prompt %(name)s created. Write its first version.") % {"name": prompt}
            )
            return redirect("catalog:version_create", team=prompt.team.slug, name=prompt.name)
    return render(request, "catalog/prompt_form.html", {"form": form})


# A prompt


@login_required
def prompt_detail(request: HttpRequest, team: str, name: str) -> HttpResponse:
    prompt = _prompt(request, team, name)
    versions = list(prompt_versions(prompt=prompt))
    approved = [v.number for v in versions if v.status == VersionStatus.APPROVED]
    pending_moves = [
        (move, approval_subject_request(subject=move))
        for move in prompt.label_moves.filter(status=LabelMoveStatus.PENDING).select_related("version")
    ]
    return render(
        request,
        "catalog/prompt_detail.html",
        _prompt_context(request, prompt)
        | {
            "versions": versions,
            "labels": prompt.labels.select_related("version", "updated_by"),
            "pending_moves": pending_moves,
            "label_form": LabelMoveForm(approved_numbers=approved, initial={"label": "production"}),
            "approved_numbers": approved,
        },
    )


def _prompt_context(request: HttpRequest, prompt: Prompt) -> dict[str, Any]:
    user, team_id = request.user, prompt.team_id
    return {
        "prompt": prompt,
        "can_author": user_has_role(user, team_id, CATALOG_AUTHORS),
        "can_move_labels": user_has_role(user, team_id, LABEL_MOVERS),
        "is_governance": user_has_role(user, team_id, PROTECTED_LABEL_MOVERS),
        "protected_labels": settings.CATALOG_PROTECTED_LABELS,
    }


@login_required
def prompt_edit(request: HttpRequest, team: str, name: str) -> HttpResponse:
    prompt = _prompt(request, team, name)
    _require(request, prompt, CATALOG_AUTHORS)
    initial = {"description": prompt.description, "tags": ", ".join(t.name for t in prompt.tags.all())}
    form = PromptEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            prompt_update(
                actor=request.user,
                prompt=prompt,
                description=form.cleaned_data["description"],
                tags=split_tags(form.cleaned_data["tags"]),
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Prompt details saved."))
            return redirect("catalog:prompt", team=prompt.team.slug, name=prompt.name)
    return render(request, "catalog/prompt_edit.html", {"form": form, "prompt": prompt})


@login_required
@require_POST
def label_set(request: HttpRequest, team: str, name: str) -> HttpResponse:
    prompt = _prompt(request, team, name)
    _require(request, prompt, LABEL_MOVERS)
    approved = list(prompt.versions.filter(status=VersionStatus.APPROVED).values_list("number", flat=True))
    form = LabelMoveForm(request.POST, approved_numbers=approved)
    back = redirect("catalog:prompt", team=prompt.team.slug, name=prompt.name)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return back
    label, number = form.cleaned_data["label"].strip(), form.cleaned_data["version"]
    try:
        result = prompt_label_set(actor=request.user, prompt=prompt, label=label, version_number=number)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return back
    params = {"label": label, "number": number}
    if result.pending:
        params["request"] = result.request.pk
        messages.info(
            request,
            _(
                "%(label)s is protected: moving it to v%(number)s now waits for governance approval "
                "(request #%(request)s)."
            )
            % params,
        )
    else:
        messages.success(request, _("%(label)s now points at v%(number)s.") % params)
    return back


# Versions


@login_required
def version_detail(request: HttpRequest, team: str, name: str, number: int) -> HttpResponse:
    prompt = _prompt(request, team, name)
    version = _version(prompt, number)
    baseline = last_approved_before(version=version)
    approval = approval_subject_request(subject=version)
    context = _prompt_context(request, prompt) | {
        "version": version,
        "baseline": baseline,
        "diff_rows": version_diff(old=baseline, new=version),
        "labels_here": [label.name for label in version.labels.all()],
        "next_url": request.get_full_path(),
    }
    context |= review_context(request, approval)
    return render(request, "catalog/version_detail.html", context)


def _editor(
    request: HttpRequest, prompt: Prompt, form: VersionForm, version: PromptVersion | None
) -> HttpResponse:
    return render(
        request,
        "catalog/version_form.html",
        {
            "prompt": prompt,
            "version": version,
            "form": form,
            "role_choices": ROLE_CHOICES,
            "model_suggestions": MODEL_SUGGESTIONS,
        },
    )


def _version_initial(version: PromptVersion | None) -> tuple[dict[str, Any], list[dict[str, str]] | None]:
    if version is None:
        return {"model": MODEL_SUGGESTIONS[0], "parameters": json.dumps(DEFAULT_PARAMETERS, indent=2)}, None
    initial = {"model": version.model, "parameters": json.dumps(version.parameters, indent=2)}
    return initial, version.messages


@login_required
def version_create(request: HttpRequest, team: str, name: str) -> HttpResponse:
    """A new draft, pre-filled from the latest version."""
    prompt = _prompt(request, team, name)
    _require(request, prompt, CATALOG_AUTHORS)
    if request.method != "POST":
        initial, rows = _version_initial(prompt_versions(prompt=prompt).first())
        return _editor(request, prompt, VersionForm(initial=initial, initial_messages=rows), None)
    form = VersionForm(request.POST)
    action = request.POST.get("action", "save")
    if action != "save":
        form.apply_row_action(action)
        form = _unbound_copy(form)
        return _editor(request, prompt, form, None)
    if form.is_valid():
        try:
            version = prompt_version_create(
                actor=request.user,
                prompt=prompt,
                messages=form.messages(),
                model=form.cleaned_data["model"],
                parameters=form.cleaned_data["parameters"],
                message=form.cleaned_data["message"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_service_error(_service_message(exc), exc.details)
        else:
            messages.success(
                request,
                _("Draft v%(number)s saved. Submit it for review when it is ready.")
                % {"number": version.number},
            )
            return redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)
    return _editor(request, prompt, form, None)


@login_required
def version_edit(request: HttpRequest, team: str, name: str, number: int) -> HttpResponse:
    prompt = _prompt(request, team, name)
    _require(request, prompt, CATALOG_AUTHORS)
    version = _version(prompt, number)
    if version.status != VersionStatus.DRAFT:
        messages.error(
            request,
            _("v%(number)s is no longer a draft: its content is frozen. Write a new version.")
            % {"number": version.number},
        )
        return redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)
    if request.method != "POST":
        initial, rows = _version_initial(version)
        initial["message"] = version.message
        return _editor(request, prompt, VersionForm(initial=initial, initial_messages=rows), version)
    form = VersionForm(request.POST)
    action = request.POST.get("action", "save")
    if action != "save":
        form.apply_row_action(action)
        return _editor(request, prompt, _unbound_copy(form), version)
    if form.is_valid():
        try:
            prompt_version_update(
                actor=request.user,
                version=version,
                messages=form.messages(),
                model=form.cleaned_data["model"],
                parameters=form.cleaned_data["parameters"],
                message=form.cleaned_data["message"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_service_error(_service_message(exc), exc.details)
        else:
            messages.success(request, _("Draft v%(number)s saved.") % {"number": version.number})
            return redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)
    return _editor(request, prompt, form, version)


def _unbound_copy(form: VersionForm) -> VersionForm:
    """After adding or removing a row (no JavaScript), show the form again without errors."""
    copy = VersionForm(initial={k: form.data.get(k, "") for k in ("model", "parameters", "message")})
    copy.message_rows = form.message_rows
    return copy


@login_required
@require_POST
def version_preview(request: HttpRequest, team: str, name: str) -> HttpResponse:
    """The editor's live preview: the variables found, sample inputs, and the rendered messages
    (or the template error with its message and line). Reads only; saves nothing."""
    prompt = _prompt(request, team, name)
    _require(request, prompt, CATALOG_AUTHORS)
    rows = VersionForm(request.POST).messages()
    context: dict[str, Any] = {"rows": rows}
    try:
        variables = template_variables([row["template"] for row in rows])
    except TemplateProblem as problem:
        kept = {k[len("sample_") :]: v for k, v in request.POST.items() if k.startswith("sample_")}
        context |= {"problem": problem, "kept_samples": kept}
        return render(request, "catalog/partials/preview.html", context)
    samples = {var: request.POST.get(f"sample_{var}", "") for var in variables}
    values = {var: samples[var] if samples[var] != "" else "{{ " + var + " }}" for var in variables}
    draft = PromptVersion(messages=rows, variables=variables)
    try:
        context["rendered"] = prompt_render(version=draft, variables=values)
    except ApplicationError as exc:
        context["render_error"] = exc
    context |= {"variables": variables, "samples": samples}
    return render(request, "catalog/partials/preview.html", context)


@login_required
@require_POST
def version_submit(request: HttpRequest, team: str, name: str, number: int) -> HttpResponse:
    prompt = _prompt(request, team, name)
    _require(request, prompt, CATALOG_AUTHORS)
    version = _version(prompt, number)
    try:
        approval = prompt_version_submit(actor=request.user, version=version)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(
            request,
            _("v%(number)s is in review (request #%(request)s): someone else must approve it.")
            % {"number": version.number, "request": approval.pk},
        )
    return redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)


@login_required
@require_POST
def version_retire(request: HttpRequest, team: str, name: str, number: int) -> HttpResponse:
    prompt = _prompt(request, team, name)
    _require(request, prompt, PROTECTED_LABEL_MOVERS)
    version = _version(prompt, number)
    try:
        prompt_version_retire(actor=request.user, version=version)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
    else:
        messages.success(request, _("v%(number)s retired.") % {"number": version.number})
    return redirect("catalog:version", team=prompt.team.slug, name=prompt.name, number=version.number)
