"""Feedback pages.

- Annotators: their queues, and one item at a time (the redacted call, its prompt version, the schema's
  form, keyboard shortcuts from static/js/annotate.js); nothing of other annotators' ratings.
- Governance, engineers and administrators: schemas, queues (new, progress, results, agreement,
  disagreements), an item's ratings and its adjudication (governance decides), dataset export and download.
"""

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.accounts.models import Membership, Team, User
from apps.accounts.selectors import team_get_by_slug, team_list, user_has_role
from apps.common.exceptions import ApplicationError
from apps.common.views import paginate, raise_for_http
from apps.feedback.api import dataset_response
from apps.feedback.forms import ExportForm, QueueForm, SchemaForm, criterion_choices, values_from_post
from apps.feedback.models import CriterionKind
from apps.feedback.selectors import (
    annotator_progress,
    dataset_get,
    dataset_list,
    feedback_can_annotate,
    feedback_can_manage,
    final_values,
    item_get_for_adjudication,
    queue_get_for_annotation,
    queue_get_managed,
    queue_list,
    queue_progress,
    queue_results,
    rating_schema_list,
    slot_for_annotation,
)
from apps.feedback.services import (
    ADJUDICATORS,
    ANNOTATORS,
    FEEDBACK_MANAGERS,
    adjudication_set,
    annotation_next,
    annotation_queue_create,
    annotation_skip,
    annotation_submit,
    dataset_export,
    queue_may_annotate,
    rating_schema_create,
)
from apps.logs.models import LogEvent
from apps.logs.views import KNOWN_ROLES, _parts


def _require_manager(request: HttpRequest) -> list[Team]:
    teams = list(team_list(user=request.user, roles=FEEDBACK_MANAGERS))
    if not teams:
        raise PermissionDenied(_("Only governance, engineers and administrators manage feedback."))
    return teams


def _event_view(event: LogEvent | None) -> dict[str, Any] | None:
    """A stored event's redacted text, cut into runs and placeholders for the template."""
    if event is None:
        return None
    shown = []
    for message in (
        event.input if isinstance(event.input, list) else [{"role": "user", "content": event.input}]
    ):
        role = str(message.get("role", "")) if isinstance(message, dict) else ""
        content = message.get("content", "") if isinstance(message, dict) else str(message)
        shown.append(
            {
                "role": role,
                "role_class": role if role in KNOWN_ROLES else "other",
                "parts": _parts(content if isinstance(content, str) else json.dumps(content)),
            }
        )
    return {"event": event, "messages": shown, "output_parts": _parts(event.output)}


def _criteria_view(
    criteria: list[dict[str, Any]], values: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    values = values or {}
    out = []
    for c in criteria:
        current = values.get(c["name"])
        if isinstance(current, bool):
            current = "true" if current else "false"
        out.append(
            c
            | {
                "choices": [
                    {"value": value, "label": label, "key": n if n <= 9 else None}
                    for n, (value, label) in enumerate(criterion_choices(c), start=1)
                ],
                "current": "" if current is None else str(current),
                "is_text": c["kind"] == CriterionKind.TEXT,
            }
        )
    return out


# Queues


@login_required
@require_safe
def index(request: HttpRequest) -> HttpResponse:
    manages = feedback_can_manage(user=request.user)
    if not manages and not feedback_can_annotate(user=request.user):
        raise PermissionDenied(_("Your roles do not include annotation or feedback."))
    rows = []
    for queue in queue_list(user=request.user):
        annotating = queue_may_annotate(request.user, queue)
        managed = user_has_role(request.user, queue.team_id, FEEDBACK_MANAGERS)
        row: dict[str, Any] = {"queue": queue, "annotating": annotating, "managed": managed}
        if annotating:
            row["mine"] = annotator_progress(user=request.user, queue=queue)
        if managed:
            row["progress"] = queue_progress(queue=queue)
        rows.append(row)
    return render(request, "feedback/index.html", {"rows": rows, "manages": manages})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def queue_new(request: HttpRequest) -> HttpResponse:
    teams = _require_manager(request)
    schemas = list(rating_schema_list(user=request.user))
    annotators = sorted(
        set(
            Membership.objects.filter(team__in=teams, role__in=ANNOTATORS).values_list(
                "user__username", flat=True
            )
        )
    )
    form = QueueForm(request.POST or None, teams=teams, schemas=schemas, annotators=annotators)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        team = next(t for t in teams if t.slug == data["team"])
        schema = next(s for s in schemas if str(s.pk) == data["schema"])
        try:
            queue = annotation_queue_create(
                actor=request.user,
                team=team,
                name=data["name"],
                schema=schema,
                kind=data["kind"],
                filters=form.filters(),
                sampling_rate=data["sampling_rate"],
                size=data["size"],
                overlap=data["overlap"],
                lease_minutes=data["lease_minutes"],
                instructions=data["instructions"],
                due_date=data["due_date"],
                assignees=list(User.objects.filter(username__in=data["assignees"])),
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("Queue %(name)s created with %(count)s items.")
                % {"name": queue.name, "count": queue.item_count},
            )
            return redirect("feedback:queue", queue_id=queue.pk)
    return render(request, "feedback/queue_form.html", {"form": form, "has_schemas": bool(schemas)})


@login_required
@require_safe
def queue_detail(request: HttpRequest, queue_id: int) -> HttpResponse:
    _require_manager(request)
    queue = queue_get_managed(user=request.user, queue_id=queue_id)
    if queue is None:
        raise Http404
    return render(request, "feedback/queue_detail.html", _queue_context(request, queue))


def _queue_context(request: HttpRequest, queue: Any, export_form: ExportForm | None = None) -> dict[str, Any]:
    results = queue_results(queue=queue)
    return {
        "queue": queue,
        "progress": queue_progress(queue=queue),
        "results": results,
        "export_form": export_form or ExportForm(),
        "datasets": list(dataset_list(user=request.user).filter(queue=queue)),
        "criteria": queue.schema.criteria,
    }


@login_required
@require_POST
def queue_export(request: HttpRequest, queue_id: int) -> HttpResponse:
    _require_manager(request)
    queue = queue_get_managed(user=request.user, queue_id=queue_id)
    if queue is None:
        raise Http404
    form = ExportForm(request.POST)
    if form.is_valid():
        try:
            dataset = dataset_export(
                actor=request.user,
                queue=queue,
                kind=form.cleaned_data["kind"],
                name=form.cleaned_data["name"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                _("Exported %(name)s version %(version)s: %(rows)s rows.")
                % {"name": dataset.name, "version": dataset.version, "rows": dataset.row_count},
            )
            return redirect("feedback:datasets")
    return render(request, "feedback/queue_detail.html", _queue_context(request, queue, form), status=422)


# Annotating


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def annotate(request: HttpRequest, queue_id: int) -> HttpResponse:
    queue = queue_get_for_annotation(user=request.user, queue_id=queue_id)
    if queue is None:
        if not feedback_can_annotate(user=request.user):
            raise PermissionDenied(_("Only the queue's annotators annotate."))
        raise Http404
    error = ""
    values: dict[str, Any] = {}
    if request.method == "POST":
        slot_id = request.POST.get("slot", "")
        if not slot_id.isdigit():
            raise Http404
        try:
            if request.POST.get("action") == "skip":
                annotation_skip(actor=request.user, slot_id=int(slot_id))
                messages.info(request, _("Skipped: the item goes back to the pool for someone else."))
            else:
                values = values_from_post(queue.schema.criteria, request.POST)
                annotation_submit(actor=request.user, slot_id=int(slot_id), values=values)
                messages.success(request, _("Saved."))
        except ApplicationError as exc:
            raise_for_http(exc)
            error = exc.message
        if not error:
            return redirect("feedback:annotate", queue_id=queue.pk)
    slot = annotation_next(actor=request.user, queue=queue)
    context: dict[str, Any] = {
        "queue": queue,
        "slot": slot,
        "progress": annotator_progress(user=request.user, queue=queue),
        "error": error,
    }
    if slot is not None:
        content = slot_for_annotation(user=request.user, slot=slot)
        context |= {
            "item": content["item"],
            "answer": _event_view(content["event"]),
            "answer_b": _event_view(content["event_b"]),
            "criteria": _criteria_view(queue.schema.criteria, values),
        }
    return render(request, "feedback/annotate.html", context, status=422 if error else 200)


# Adjudication


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    _require_manager(request)
    item = item_get_for_adjudication(user=request.user, item_id=item_id)
    if item is None:
        raise Http404
    can_adjudicate = user_has_role(request.user, item.queue.team_id, ADJUDICATORS)
    criteria = item.queue.schema.criteria
    error = ""
    if request.method == "POST":
        if not can_adjudicate:
            raise PermissionDenied(_("Only governance adjudicates."))
        values = values_from_post(criteria, request.POST)
        try:
            adjudication_set(
                actor=request.user, item=item, values=values, note=request.POST.get("note", "")[:4000]
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            error = exc.message
        else:
            messages.success(request, _("Final values saved."))
            return redirect("feedback:item", item_id=item.pk)
    item = item_get_for_adjudication(user=request.user, item_id=item_id)
    if item is None:
        raise Http404
    adjudication = getattr(item, "adjudication", None)
    annotations = list(item.annotations.all())
    rows = [{"criterion": c, "values": [a.values.get(c["name"]) for a in annotations]} for c in criteria]
    context = {
        "item": item,
        "queue": item.queue,
        "answer": _event_view(item.event),
        "answer_b": _event_view(item.event_b),
        "annotations": annotations,
        "rows": rows,
        "adjudication": adjudication,
        "final": final_values(criteria, item),
        "criteria": _criteria_view(criteria, adjudication.values if adjudication else None),
        "can_adjudicate": can_adjudicate,
        "error": error,
    }
    return render(request, "feedback/item.html", context, status=422 if error else 200)


# Schemas


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def schemas(request: HttpRequest) -> HttpResponse:
    teams = _require_manager(request)
    form = SchemaForm(request.POST or None, teams=teams)
    if request.method == "POST" and form.is_valid():
        team = team_get_by_slug(user=request.user, slug=form.cleaned_data["team"])
        if team is None:
            raise Http404
        try:
            schema = rating_schema_create(
                actor=request.user,
                team=team,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                criteria=form.cleaned_data["criteria"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error("criteria" if exc.code == "invalid_schema" else None, exc.message)
        else:
            messages.success(request, _("Schema %(name)s saved.") % {"name": schema.name})
            return redirect("feedback:schemas")
    status = 422 if request.method == "POST" else 200
    return render(
        request,
        "feedback/schemas.html",
        {"form": form, "schemas": list(rating_schema_list(user=request.user))},
        status=status,
    )


# Datasets


@login_required
@require_safe
def datasets(request: HttpRequest) -> HttpResponse:
    _require_manager(request)
    return render(
        request, "feedback/datasets.html", {"page": paginate(request, dataset_list(user=request.user), 50)}
    )


@login_required
@require_safe
def dataset_download(request: HttpRequest, dataset_id: int) -> HttpResponse:
    _require_manager(request)
    dataset = dataset_get(user=request.user, dataset_id=dataset_id)
    if dataset is None:
        raise Http404
    return dataset_response(dataset)
