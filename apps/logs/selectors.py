"""Reads of logs. Text is only ever read from stored (redacted) events, by roles allowed to read it;
product owners get aggregates only."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Substr

from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.accounts.selectors import user_team_ids
from apps.logs.models import EventState, ExportState, LogEvent, TeamLogPolicy

LOG_TEXT_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER})
LOG_AGGREGATE_READERS = LOG_TEXT_READERS | {Role.PRODUCT_OWNER}
QUARANTINE_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE})


@dataclass(frozen=True)
class LogFilters:
    team_id: int | None = None
    app: str = ""
    prompt: str = ""
    prompt_version: int | None = None
    model: str = ""
    status: str = ""
    since: datetime | None = None
    until: datetime | None = None
    has_pii: bool | None = None
    info_type: str = ""
    search: str = ""


def _filtered(qs: QuerySet[LogEvent], f: LogFilters) -> QuerySet[LogEvent]:
    if f.team_id is not None:
        qs = qs.filter(team_id=f.team_id)
    if f.app:
        qs = qs.filter(app=f.app)
    if f.prompt:
        qs = qs.filter(prompt=f.prompt)
    if f.prompt_version is not None:
        qs = qs.filter(prompt_version=f.prompt_version)
    if f.model:
        qs = qs.filter(model=f.model)
    if f.status:
        qs = qs.filter(status=f.status)
    if f.since is not None:
        qs = qs.filter(started_at__gte=f.since)
    if f.until is not None:
        qs = qs.filter(started_at__lt=f.until)
    if f.has_pii is not None:
        qs = qs.filter(has_pii=f.has_pii)
    if f.info_type:
        qs = qs.filter(findings__info_type=f.info_type)
    if f.search:
        qs = qs.filter(search_text__contains=f.search.lower())
    return qs


def log_event_list(*, user: User, filters: LogFilters) -> QuerySet[LogEvent]:
    """Stored (redacted) events of the teams where the user may read log text."""
    qs = LogEvent.objects.filter(state=EventState.STORED, team_id__in=user_team_ids(user, LOG_TEXT_READERS))
    return (
        _filtered(qs, filters)
        .defer("staged_payload", "search_text")
        .select_related("team")
        .order_by("-started_at", "-id")
    )


def log_event_get(*, user: User, event_id: int) -> LogEvent | None:
    return (
        LogEvent.objects.filter(
            pk=event_id, state=EventState.STORED, team_id__in=user_team_ids(user, LOG_TEXT_READERS)
        )
        .defer("staged_payload")
        .select_related("team")
        .prefetch_related("findings")
        .first()
    )


def log_can_read_text(*, user: User) -> bool:
    return bool(user_team_ids(user, LOG_TEXT_READERS))


def log_aggregates(*, user: User, filters: LogFilters) -> dict:
    """Counts without text, for everyone who may see a team's logs (product owners included)."""
    qs = _filtered(
        LogEvent.objects.filter(
            state=EventState.STORED, team_id__in=user_team_ids(user, LOG_AGGREGATE_READERS)
        ),
        LogFilters(**{**filters.__dict__, "search": ""}),
    )
    totals = qs.aggregate(
        events=Count("id"),
        with_pii=Count("id", filter=Q(has_pii=True)),
        errors=Count("id", filter=~Q(status="ok")),
        tokens_in=Sum("tokens_in"),
        tokens_out=Sum("tokens_out"),
    )
    by_model = list(qs.values("model").annotate(events=Count("id")).order_by("-events")[:20])
    by_info_type = list(
        qs.filter(findings__isnull=False)
        .values("findings__info_type")
        .annotate(events=Count("id"))
        .order_by("-events")
    )
    return {
        "totals": totals,
        "by_model": by_model,
        "by_info_type": [
            {"info_type": r["findings__info_type"], "events": r["events"]} for r in by_info_type
        ],
    }


def pipeline_status(*, user: User) -> dict:
    """Per team the user may manage: how many events wait for the scan, are quarantined, are stored."""
    teams = user_team_ids(user, QUARANTINE_READERS)
    rows = (
        LogEvent.objects.filter(team_id__in=teams)
        .values("team__slug", "team_id", "state")
        .annotate(n=Count("id"))
        .order_by("team__slug")
    )
    status: dict[str, dict] = {}
    for row in rows:
        entry = status.setdefault(
            row["team__slug"], {"team_id": row["team_id"], "staged": 0, "quarantined": 0, "stored": 0}
        )
        entry[row["state"]] = row["n"]
    return status


def quarantine_list(*, user: User, team_id: int | None = None) -> QuerySet[LogEvent]:
    """Quarantined events: identifiers, attempts and the scanner's error only (their text is encrypted)."""
    qs = LogEvent.objects.filter(
        state=EventState.QUARANTINED, team_id__in=user_team_ids(user, QUARANTINE_READERS)
    )
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    return (
        qs.only(
            "id",
            "team_id",
            "request_id",
            "app",
            "model",
            "started_at",
            "received_at",
            "attempts",
            "next_attempt_at",
            "last_error",
            "state",
        )
        .select_related("team")
        .order_by("next_attempt_at", "id")
    )


def log_event_rows(*, user: User, filters: LogFilters) -> QuerySet[LogEvent]:
    """log_event_list for a table: the text left in the database but for a short preview of the
    (redacted) output or error."""
    return (
        log_event_list(user=user, filters=filters)
        .defer("input", "output", "error", "metadata", "end_user")
        .annotate(output_preview=Substr("output", 1, 160), error_preview=Substr("error", 1, 160))
    )


def log_filter_suggestions(*, user: User, roles: frozenset[str], sample: int = 2000) -> dict[str, list[str]]:
    """Apps, prompts, models and infoTypes seen in the latest stored events of the user's teams (a bounded
    sample, one query): suggestions for the explorer's filters, never text."""
    rows = (
        LogEvent.objects.filter(state=EventState.STORED, team_id__in=user_team_ids(user, roles))
        .order_by("-started_at")
        .values_list("app", "prompt", "model", "pii_types")[:sample]
    )
    apps: set[str] = set()
    prompts: set[str] = set()
    models: set[str] = set()
    info_types: set[str] = set()
    for app, prompt, model, pii_types in rows:
        apps.add(app)
        prompts.add(prompt)
        models.add(model)
        info_types.update(t for t in pii_types or [] if isinstance(t, str))
    return {
        "apps": sorted(a for a in apps if a),
        "prompts": sorted(p for p in prompts if p),
        "models": sorted(m for m in models if m),
        "info_types": sorted(info_types),
    }


def export_state_list() -> QuerySet[ExportState]:
    """The export's watermark per warehouse (no event data)."""
    return ExportState.objects.order_by("warehouse")


def team_log_policies(*, user: User) -> dict[int, TeamLogPolicy]:
    """The log policies of the teams whose logs the user manages, by team id (a team without a row
    has the defaults)."""
    return {
        p.team_id: p
        for p in TeamLogPolicy.objects.filter(team_id__in=user_team_ids(user, QUARANTINE_READERS))
    }
