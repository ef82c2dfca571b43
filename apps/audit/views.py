"""The audit log: read, filter, export, verify. There is no edit or delete path, here or anywhere."""

import csv
import json
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.roles import AUDIT_READERS
from apps.accounts.selectors import team_list
from apps.audit.actions import action_label
from apps.audit.forms import AuditFilterForm
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_can_read, audit_event_list, audit_last_verification
from apps.audit.services import audit_chain_verify
from apps.common.views import is_htmx, paginate, render_page_or_fragment

EXPORT_CHUNK = 2000


def _require_reader(request: HttpRequest) -> None:
    if not audit_can_read(user=request.user):
        raise PermissionDenied(_("Only administrators and governance read the audit log."))


def _filtered(request: HttpRequest) -> tuple[AuditFilterForm, QuerySet[AuditEvent]]:
    form = AuditFilterForm(request.GET or None, teams=list(team_list(user=request.user, roles=AUDIT_READERS)))
    return form, audit_event_list(user=request.user, **form.filters())


@login_required
@require_safe
def event_list(request: HttpRequest) -> HttpResponse:
    _require_reader(request)
    form, events = _filtered(request)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "page": paginate(request, events, per_page=50),
        "query": query.urlencode(),
        "last_verification": audit_last_verification(),
    }
    return render_page_or_fragment(request, "audit/event_list.html", "audit/partials/events.html", context)


def _event_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "sequence": event.sequence,
        "occurred_at": event.occurred_at.isoformat(),
        "actor_id": event.actor_id,
        "actor": event.actor_username,
        "action": event.action,
        "team_id": event.team_id,
        "team": event.team_slug,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "target": event.target_repr,
        "changes": event.changes,
        "context": event.context,
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


class _Echo:
    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> str:
    """Text a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


CSV_COLUMNS = [
    "sequence",
    "occurred_at",
    "actor",
    "action",
    "action_label",
    "team",
    "target_type",
    "target_id",
    "target",
    "changes",
    "request_id",
    "ip",
    "prev_hash",
    "hash",
]


def _csv_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        context = event.context or {}
        yield writer.writerow(
            [
                event.sequence,
                event.occurred_at.isoformat(),
                _cell(event.actor_username),
                event.action,
                _cell(action_label(event.action)),
                event.team_slug,
                event.target_type,
                event.target_id,
                _cell(event.target_repr),
                json.dumps(event.changes, ensure_ascii=False, sort_keys=True),
                _cell(context.get("request_id", "")),
                _cell(context.get("ip", "")),
                event.prev_hash,
                event.hash,
            ]
        )


def _jsonl_rows(events: QuerySet[AuditEvent]) -> Iterator[str]:
    for event in events.iterator(chunk_size=EXPORT_CHUNK):
        yield json.dumps(_event_dict(event), ensure_ascii=False, sort_keys=True) + "\n"


def _export(
    request: HttpRequest, rows: Iterator[str], content_type: str, extension: str
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(rows, content_type=content_type)
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = f'attachment; filename="atalaya-audit-{stamp}.{extension}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_safe
def export_csv(request: HttpRequest) -> StreamingHttpResponse:
    _require_reader(request)
    _form, events = _filtered(request)
    return _export(request, _csv_rows(events), "text/csv; charset=utf-8", "csv")


@login_required
@require_safe
def export_jsonl(request: HttpRequest) -> StreamingHttpResponse:
    _require_reader(request)
    _form, events = _filtered(request)
    return _export(request, _jsonl_rows(events), "application/x-ndjson; charset=utf-8", "jsonl")


@login_required
@require_POST
def verify(request: HttpRequest) -> HttpResponse:
    """Check the whole hash chain now and show the outcome (a read: nothing is written)."""
    _require_reader(request)
    result = audit_chain_verify()
    if is_htmx(request):
        return render(
            request, "audit/partials/verify_result.html", {"result": result, "checked_at": timezone.now()}
        )
    if result.ok:
        messages.success(
            request,
            _("The audit chain is intact: %(count)s events checked.") % {"count": result.events_checked},
        )
    else:
        messages.error(
            request,
            _("The audit chain is broken at event #%(sequence)s: %(reason)s")
            % {"sequence": result.first_broken_sequence, "reason": result.reason},
        )
    return redirect("audit:list")
