"""Golden-set pages: the list (per team, with each set's prompt), a set (its versions, the cases of the
latest or a chosen version, the history), case forms (add, edit, delete: each makes a new version), import
and export, and a case made from a logged event or from an annotator's corrected answer.

Readers are the team's catalog readers; writers those who author prompts. A set of a team the user cannot
read answers 404; a reader who may not write gets 403 on the writing pages."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import BadRequest, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.accounts.roles import CATALOG_AUTHORS, CATALOG_READERS
from apps.accounts.selectors import team_list, user_team_ids
from apps.catalog.models import Prompt
from apps.common.exceptions import ApplicationError, NotFound
from apps.common.views import paginate, parse_id, raise_for_http
from apps.evaluation.api_golden import export_response
from apps.evaluation.forms_golden import (
    GoldenCaseForm,
    GoldenImportForm,
    GoldenSetChoiceForm,
    GoldenSetCreateForm,
    GoldenSetEditForm,
)
from apps.evaluation.golden_sets import (
    FORMATS,
    annotation_for_golden_case,
    case_canonical,
    case_draft_from_event,
    case_variables_from_event,
    corrected_text,
    golden_case_add,
    golden_case_from_annotation,
    golden_case_from_log_event,
    golden_case_remove,
    golden_case_update,
    golden_cases,
    golden_set_can_write,
    golden_set_create,
    golden_set_get,
    golden_set_import,
    golden_set_latest_version,
    golden_set_update,
    golden_set_version_get,
    golden_set_versions,
    golden_sets_for,
    golden_sets_with_latest,
)
from apps.evaluation.models import GoldenSet, GoldenSetVersion
from apps.logs.selectors import log_event_get


def _golden_set(request: HttpRequest, golden_set_id: int) -> GoldenSet:
    try:
        return golden_set_get(user=request.user, golden_set_id=golden_set_id)
    except NotFound:
        raise Http404 from None


def _require_writer(request: HttpRequest, golden_set: GoldenSet) -> None:
    if not golden_set_can_write(user=request.user, golden_set=golden_set):
        raise PermissionDenied(
            _("Only engineers and administrators of %(team)s edit its golden sets.")
            % {"team": golden_set.team.slug}
        )


def _latest(golden_set: GoldenSet) -> GoldenSetVersion:
    version = golden_set_latest_version(golden_set=golden_set)
    if version is None:  # every set is created with its version 1
        raise Http404
    return version


# The list and a set


@login_required
@require_safe
def golden_set_list(request: HttpRequest) -> HttpResponse:
    teams = list(team_list(user=request.user, roles=CATALOG_READERS))
    if not teams:
        raise PermissionDenied(_("You do not read the prompt catalog of any team."))
    slug = request.GET.get("team", "")
    team = next((t for t in teams if t.slug == slug), None)
    sets = golden_sets_for(user=request.user, team_id=team.pk if team else None)
    page = paginate(request, sets)
    page.object_list = golden_sets_with_latest(page.object_list)
    context = {
        "page": page,
        "teams": teams,
        "team": team,
        "can_create": bool(user_team_ids(request.user, CATALOG_AUTHORS)),
    }
    return render(request, "evaluation/golden_list.html", context)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_set_new(request: HttpRequest) -> HttpResponse:
    teams = team_list(user=request.user, roles=CATALOG_AUTHORS)
    if not teams.exists():
        raise PermissionDenied(_("Only engineers and administrators of a team create golden sets."))
    prompts = Prompt.objects.filter(team__in=teams).select_related("team").order_by("team__slug", "name")
    initial: dict[str, Any] = {}
    prompt_id = parse_id(request.GET.get("prompt"))
    if prompt_id is not None:
        prompt = prompts.filter(pk=prompt_id).first()
        if prompt is not None:
            initial = {"prompt": prompt, "team": prompt.team, "name": f"{prompt.name}-golden"}
    form = GoldenSetCreateForm(request.POST or None, teams=teams, prompts=prompts, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            golden_set = golden_set_create(
                actor=request.user,
                team=data["team"],
                name=data["name"],
                description=data["description"],
                prompt=data["prompt"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error("name" if exc.code in ("golden_set_exists", "invalid_name") else None, exc.message)
        else:
            messages.success(
                request, _("Golden set %(name)s created: add its cases.") % {"name": golden_set.name}
            )
            return redirect("golden:detail", golden_set_id=golden_set.pk)
    return render(request, "evaluation/golden_form.html", {"form": form}, status=422 if form.errors else 200)


@login_required
@require_safe
def golden_set_detail(request: HttpRequest, golden_set_id: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    latest = _latest(golden_set)
    version = latest
    number = request.GET.get("version", "")
    if number:
        if parse_id(number) is None:
            raise Http404
        try:
            version = golden_set_version_get(golden_set=golden_set, number=parse_id(number))
        except NotFound:
            raise Http404 from None
    context = {
        "golden_set": golden_set,
        "version": version,
        "latest": latest,
        "is_latest": version.pk == latest.pk,
        "cases": golden_cases(version=version),
        "versions": list(golden_set_versions(golden_set=golden_set)),
        "can_write": golden_set_can_write(user=request.user, golden_set=golden_set),
        "formats": FORMATS,
        "edit_form": GoldenSetEditForm(initial={"description": golden_set.description}),
    }
    return render(request, "evaluation/golden_detail.html", context)


@login_required
@require_POST
def golden_set_edit(request: HttpRequest, golden_set_id: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    _require_writer(request, golden_set)
    form = GoldenSetEditForm(request.POST)
    if form.is_valid():
        try:
            golden_set_update(
                actor=request.user, golden_set=golden_set, description=form.cleaned_data["description"]
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            messages.error(request, exc.message)
        else:
            messages.success(request, _("Description saved."))
    return redirect("golden:detail", golden_set_id=golden_set.pk)


# Cases


def _case_page(
    request: HttpRequest, golden_set: GoldenSet, form: GoldenCaseForm, **extra: Any
) -> HttpResponse:
    context = {"golden_set": golden_set, "form": form} | extra
    return render(request, "evaluation/golden_case_form.html", context, status=422 if form.errors else 200)


def _saved(request: HttpRequest, version: GoldenSetVersion) -> HttpResponse:
    messages.success(
        request,
        _("Saved as version %(number)s (%(count)s cases).")
        % {"number": version.number, "count": version.case_count},
    )
    return redirect("golden:detail", golden_set_id=version.golden_set_id)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_case_new(request: HttpRequest, golden_set_id: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    _require_writer(request, golden_set)
    latest = _latest(golden_set)
    form = GoldenCaseForm(request.POST or None, initial={"base_version": latest.number})
    if request.method == "POST" and form.is_valid():
        try:
            version = golden_case_add(
                actor=request.user,
                golden_set=golden_set,
                case=form.case,
                message=form.cleaned_data["message"],
                base_version=form.cleaned_data["base_version"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            return _saved(request, version)
    return _case_page(request, golden_set, form, title=_("New case"))


def _case_at(golden_set: GoldenSet, version: GoldenSetVersion, position: int) -> dict[str, Any]:
    case = version.cases.filter(position=position).first()
    if case is None:
        raise Http404
    return case_canonical(case)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_case_edit(request: HttpRequest, golden_set_id: int, position: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    _require_writer(request, golden_set)
    latest = _latest(golden_set)
    current = _case_at(golden_set, latest, position)
    form = GoldenCaseForm(
        request.POST or None,
        initial=GoldenCaseForm.initial_from(current) | {"base_version": latest.number},
        source=current["source"],
        source_ref=current["source_ref"],
    )
    if request.method == "POST" and form.is_valid():
        try:
            version = golden_case_update(
                actor=request.user,
                golden_set=golden_set,
                position=position,
                case=form.case,
                message=form.cleaned_data["message"],
                base_version=form.cleaned_data["base_version"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            return _saved(request, version)
    return _case_page(
        request, golden_set, form, title=_("Case %(number)s") % {"number": position}, position=position
    )


@login_required
@require_POST
def golden_case_delete(request: HttpRequest, golden_set_id: int, position: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    _require_writer(request, golden_set)
    base = request.POST.get("base_version", "")
    if base and parse_id(base) is None:
        raise BadRequest("base_version must be a version number.")
    try:
        version = golden_case_remove(
            actor=request.user,
            golden_set=golden_set,
            position=position,
            base_version=parse_id(base),
        )
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return redirect("golden:detail", golden_set_id=golden_set.pk)
    return _saved(request, version)


# Import and export


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_set_import_view(request: HttpRequest, golden_set_id: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    _require_writer(request, golden_set)
    form = GoldenImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            version = golden_set_import(
                actor=request.user,
                golden_set=golden_set,
                content=data["file"].read(),
                fmt=data["format"],
                append=data["append"],
                message=data["message"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error("file", exc.message)
        else:
            return _saved(request, version)
    context = {"golden_set": golden_set, "form": form}
    return render(request, "evaluation/golden_import.html", context, status=422 if form.errors else 200)


@login_required
@require_safe
def golden_set_export_view(request: HttpRequest, golden_set_id: int) -> HttpResponse:
    golden_set = _golden_set(request, golden_set_id)
    fmt = request.GET.get("format", "jsonl")
    if fmt not in FORMATS:
        raise Http404
    number = request.GET.get("version", "")
    if number and parse_id(number) is None:
        raise Http404
    try:
        version = golden_set_version_get(golden_set=golden_set, number=parse_id(number)) if number else None
    except NotFound:
        raise Http404 from None
    return export_response(version or _latest(golden_set), fmt)


# Cases from a logged event and from a corrected answer


def _from_source(
    request: HttpRequest,
    *,
    team_id: int,
    prompt_name: str,
    event: Any,
    source: str,
    source_ref: str,
    reference: str,
    save: Any,
    extra: dict[str, Any],
) -> HttpResponse:
    """Choose the golden set, then edit the suggested case, then save it as a new version of that set."""
    if not golden_set_can_write(user=request.user, team_id=team_id):
        raise PermissionDenied(_("Only engineers and administrators of the team edit its golden sets."))
    sets = golden_sets_for(user=request.user, team_id=team_id)
    data = request.POST if request.method == "POST" else request.GET
    preferred = sets.filter(prompt__name=prompt_name).first() if prompt_name else None
    choice = GoldenSetChoiceForm(
        data if "golden_set" in data else None, sets=sets, initial={"golden_set": preferred}
    )
    context: dict[str, Any] = {"choice": choice, "has_sets": sets.exists(), "event": event} | extra
    golden_set = choice.cleaned_data["golden_set"] if choice.is_bound and choice.is_valid() else None
    if golden_set is None:
        return render(request, "evaluation/golden_from_source.html", context)
    draft = case_draft_from_event(event=event, golden_set=golden_set, reference=reference)
    draft |= {"source": source, "source_ref": source_ref}
    try:
        case_variables_from_event(event=event, golden_set=golden_set)
        context["variables_found"] = True
    except ApplicationError as exc:
        context["variables_found"] = False
        context["variable_names"] = exc.details.get("variables", [])
    form = GoldenCaseForm(
        request.POST if request.method == "POST" else None,
        initial=GoldenCaseForm.initial_from(draft),
        source=source,
        source_ref=source_ref,
    )
    if request.method == "POST" and form.is_valid():
        try:
            version = save(golden_set, form)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error("variables" if exc.code == "variables_required" else None, exc.message)
        else:
            return _saved(request, version)
    context |= {"golden_set": golden_set, "form": form}
    return render(request, "evaluation/golden_from_source.html", context, status=422 if form.errors else 200)


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_case_from_event(request: HttpRequest, event_id: int) -> HttpResponse:
    event = log_event_get(user=request.user, event_id=event_id)
    if event is None:
        raise Http404

    def save(golden_set: GoldenSet, form: GoldenCaseForm) -> GoldenSetVersion:
        return golden_case_from_log_event(
            actor=request.user,
            golden_set=golden_set,
            event=event,
            case={k: v for k, v in form.case.items() if k not in ("source", "source_ref")},
            message=form.cleaned_data["message"],
        )

    return _from_source(
        request,
        team_id=event.team_id,
        prompt_name=event.prompt,
        event=event,
        source="log",
        source_ref=event.request_id[:200],
        reference=event.output,
        save=save,
        extra={"from_event": True},
    )


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def golden_case_from_annotation_view(request: HttpRequest, annotation_id: int) -> HttpResponse:
    annotation = annotation_for_golden_case(user=request.user, annotation_id=annotation_id)
    if annotation is None:
        raise Http404
    try:
        criterion, text = corrected_text(annotation)
    except ApplicationError as exc:
        raise Http404(exc.message) from None
    event = annotation.item.event

    def save(golden_set: GoldenSet, form: GoldenCaseForm) -> GoldenSetVersion:
        return golden_case_from_annotation(
            actor=request.user,
            golden_set=golden_set,
            annotation=annotation,
            criterion=criterion,
            case={k: v for k, v in form.case.items() if k not in ("source", "source_ref")},
            message=form.cleaned_data["message"],
        )

    return _from_source(
        request,
        team_id=annotation.queue.team_id,
        prompt_name=event.prompt,
        event=event,
        source="annotation",
        source_ref=f"annotation:{annotation.pk}",
        reference=text,
        save=save,
        extra={"annotation": annotation, "criterion": criterion},
    )
