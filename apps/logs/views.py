"""Log pages: the explorer of redacted logs, one event, the aggregates (all that product owners see),
and the pipeline's status with the quarantine and each team's log policy (governance, admins).

Text is only ever read from stored, redacted events, through the selectors; a quarantined or staged
event shows identifiers and figures only (its text is encrypted and unreadable here)."""

import json
import re
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.models import Team
from apps.accounts.selectors import team_get_by_slug, team_list, user_has_role
from apps.common.exceptions import ApplicationError
from apps.common.views import paginate, raise_for_http, render_page_or_fragment
from apps.logs.forms import (
    REDACTION_LABELS,
    STATUS_CHOICES,
    STATUS_TONES,
    LogFilterForm,
    TeamLogPolicyForm,
)
from apps.logs.models import LogEvent
from apps.logs.selectors import (
    LOG_AGGREGATE_READERS,
    LOG_TEXT_READERS,
    QUARANTINE_READERS,
    export_state_list,
    log_aggregates,
    log_can_read_text,
    log_event_get,
    log_event_rows,
    log_filter_suggestions,
    pipeline_status,
    quarantine_list,
    team_log_policies,
)
from apps.logs.services import quarantine_retry_now, team_log_policy_set

# A redaction placeholder in stored text: [EMAIL_ADDRESS] or, in token mode, [EMAIL_ADDRESS:5f1c9a2e0b7d].
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]{1,59}(?::[0-9a-f]{12})?\]")
KNOWN_ROLES = {"system", "developer", "user", "assistant", "model", "tool", "function"}


def _parts(text: str) -> list[dict[str, Any]]:
    """Redacted text cut into plain runs and placeholders, so the template marks the placeholders
    (and escapes everything: no HTML is built here)."""
    parts: list[dict[str, Any]] = []
    cursor = 0
    for match in PLACEHOLDER.finditer(text or ""):
        if match.start() > cursor:
            parts.append({"text": text[cursor : match.start()], "pii": False})
        parts.append({"text": match.group(), "pii": True})
        cursor = match.end()
    if cursor < len(text or ""):
        parts.append({"text": text[cursor:], "pii": False})
    return parts


def _base_context() -> dict[str, Any]:
    return {
        "status_labels": dict(STATUS_CHOICES),
        "status_tones": STATUS_TONES,
        "redaction_labels": REDACTION_LABELS,
    }


# The explorer, and the aggregates


def _filter_form(request: HttpRequest, *, text: bool) -> tuple[LogFilterForm, dict[str, list[str]]]:
    roles = LOG_TEXT_READERS if text else LOG_AGGREGATE_READERS
    teams = list(team_list(user=request.user, roles=roles))
    suggestions = log_filter_suggestions(user=request.user, roles=roles)
    form = LogFilterForm(request.GET or None, teams=teams, info_types=suggestions["info_types"], text=text)
    return form, suggestions


@login_required
@require_safe
def explorer(request: HttpRequest) -> HttpResponse:
    """Redacted logs of the teams where the user reads log text; product owners (no such team) get
    the aggregates instead."""
    if not log_can_read_text(user=request.user):
        return _summary(request)
    form, suggestions = _filter_form(request, text=True)
    filters = form.filters()
    context = _base_context() | {
        "form": form,
        "suggestions": suggestions,
        "page": paginate(request, log_event_rows(user=request.user, filters=filters), per_page=50),
        "filtered": filters != type(filters)(),
        "can_manage": bool(team_list(user=request.user, roles=QUARANTINE_READERS).exists()),
    }
    return render_page_or_fragment(request, "logs/explorer.html", "logs/partials/events.html", context)


@login_required
@require_safe
def summary(request: HttpRequest) -> HttpResponse:
    return _summary(request)


def _summary(request: HttpRequest) -> HttpResponse:
    if not team_list(user=request.user, roles=LOG_AGGREGATE_READERS).exists():
        raise PermissionDenied(_("Your roles do not show the logs of any team."))
    form, suggestions = _filter_form(request, text=False)
    aggregates = log_aggregates(user=request.user, filters=form.filters())
    context = _base_context() | {
        "form": form,
        "suggestions": suggestions,
        "aggregates": aggregates,
        "totals": aggregates["totals"],
        "can_read_text": log_can_read_text(user=request.user),
        "can_manage": bool(team_list(user=request.user, roles=QUARANTINE_READERS).exists()),
    }
    return render_page_or_fragment(request, "logs/summary.html", "logs/partials/summary.html", context)


# One event


@login_required
@require_safe
def event_detail(request: HttpRequest, event_id: int) -> HttpResponse:
    if not log_can_read_text(user=request.user):
        raise PermissionDenied(_("Your roles show log aggregates only, not log text."))
    event = log_event_get(user=request.user, event_id=event_id)
    if event is None:  # another team's, not stored yet, or gone
        raise Http404
    return render(request, "logs/event_detail.html", _base_context() | _event_context(event))


def _event_context(event: LogEvent) -> dict[str, Any]:
    messages_in = event.input if isinstance(event.input, list) else []
    shown = []
    for number, message in enumerate(messages_in, start=1):
        role = str(message.get("role", "")) if isinstance(message, dict) else ""
        content = message.get("content", "") if isinstance(message, dict) else str(message)
        shown.append(
            {
                "number": number,
                "role": role,
                "role_class": role if role in KNOWN_ROLES else "other",
                "parts": _parts(content if isinstance(content, str) else json.dumps(content)),
            }
        )
    duration_ms = None
    if event.ended_at is not None:
        duration_ms = int((event.ended_at - event.started_at).total_seconds() * 1000)
    metadata = (
        json.dumps(event.metadata, indent=2, ensure_ascii=False, sort_keys=True) if event.metadata else ""
    )
    return {
        "event": event,
        "messages_in": shown,
        "output_parts": _parts(event.output),
        "error_parts": _parts(event.error),
        "end_user_parts": _parts(event.end_user),
        "metadata_parts": _parts(metadata),
        "findings": list(event.findings.all()),
        "duration_ms": duration_ms,
    }


# The pipeline's status, the quarantine, the policies


def _managed_teams(request: HttpRequest) -> list[Team]:
    teams = list(team_list(user=request.user, roles=QUARANTINE_READERS))
    if not teams:
        raise PermissionDenied(_("Only governance and administrators see the log pipeline."))
    return teams


def _managed_team(request: HttpRequest, slug: str) -> Team:
    """The team, if the user manages its logs: 404 outside the user's teams, 403 for another role."""
    team = team_get_by_slug(user=request.user, slug=slug)
    if team is None:
        raise Http404
    if not user_has_role(request.user, team.pk, QUARANTINE_READERS):
        raise PermissionDenied(_("Only governance and administrators manage a team's logs."))
    return team


def _policy_form(team: Team, policy: Any, data: Any = None) -> TeamLogPolicyForm:
    initial = {
        "redaction_mode": policy.redaction_mode if policy else "replace",
        "retention_days": policy.retention_days if policy else settings.LOG_DEFAULT_RETENTION_DAYS,
    }
    return TeamLogPolicyForm(data, initial=initial, prefix=f"policy-{team.slug}")


def _status_context(
    request: HttpRequest,
    teams: list[Team],
    bound: TeamLogPolicyForm | None = None,
    bound_team: Team | None = None,
) -> dict[str, Any]:
    counts = pipeline_status(user=request.user)
    policies = team_log_policies(user=request.user)
    rows = []
    for team in teams:
        policy = policies.get(team.pk)
        form = bound if bound_team is not None and bound_team.pk == team.pk else _policy_form(team, policy)
        rows.append(
            {
                "team": team,
                "counts": counts.get(team.slug, {"staged": 0, "quarantined": 0, "stored": 0}),
                "policy": policy,
                "form": form,
            }
        )
    return _base_context() | {
        "rows": rows,
        "quarantined_total": sum(r["counts"]["quarantined"] for r in rows),
        "page": paginate(request, quarantine_list(user=request.user), per_page=50),
        "exports": list(export_state_list()),
        "warehouse": settings.WAREHOUSE,
        "scanner": settings.PII_SCANNER,
        "default_retention": settings.LOG_DEFAULT_RETENTION_DAYS,
    }


@login_required
@require_safe
def pipeline(request: HttpRequest) -> HttpResponse:
    teams = _managed_teams(request)
    return render_page_or_fragment(
        request, "logs/status.html", "logs/partials/quarantine.html", _status_context(request, teams)
    )


@login_required
@require_POST
def quarantine_retry(request: HttpRequest, team: str) -> HttpResponse:
    managed = _managed_team(request, team)
    try:
        count = quarantine_retry_now(actor=request.user, team=managed)
    except ApplicationError as exc:
        raise_for_http(exc)
        messages.error(request, exc.message)
        return redirect("logs:status")
    if count:
        messages.success(
            request,
            ngettext(
                "Retrying %(count)s quarantined event of %(team)s now.",
                "Retrying %(count)s quarantined events of %(team)s now.",
                count,
            )
            % {"count": count, "team": managed.slug},
        )
    else:
        messages.info(request, _("Nothing of %(team)s is quarantined.") % {"team": managed.slug})
    return redirect("logs:status")


@login_required
@require_POST
def policy_set(request: HttpRequest, team: str) -> HttpResponse:
    managed = _managed_team(request, team)
    teams = _managed_teams(request)
    form = _policy_form(managed, None, request.POST)
    if form.is_valid():
        try:
            team_log_policy_set(
                actor=request.user,
                team=managed,
                redaction_mode=form.cleaned_data["redaction_mode"],
                retention_days=form.cleaned_data["retention_days"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Log policy of %(team)s saved.") % {"team": managed.slug})
            return redirect("logs:status")
    context = _status_context(request, teams, bound=form, bound_team=managed)
    context["focus_team"] = managed.slug
    return render(request, "logs/status.html", context)
