"""Writes for logs: ingestion, the scan pipeline, quarantine, export and retention.

The life of an event: ingested → staged (text encrypted) → scanned by a worker → stored redacted (the
staged text deleted). A scanner failure quarantines the batch with a backoff; beat re-dispatches due
quarantined events and staged events whose task was lost (a killed worker). Scanning is idempotent:
only events still staged or quarantined are stored, under the row lock, so nothing is stored twice.
"""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import Role
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.cloud.pii import RedactionMode, RedactionPolicy, ScannerUnavailable, ScanResult, get_scanner
from apps.cloud.pii.base import LIKELIHOODS
from apps.cloud.warehouse import WarehouseUnavailable, get_warehouse
from apps.common.bulk import bulk_insert_values, bulk_update
from apps.common.exceptions import NotFound, PermissionDenied, Unprocessable
from apps.common.tasks import send_safely
from apps.costs.latency import bucket_of as latency_bucket_of
from apps.costs.pricing import PriceBook
from apps.costs.services import hours_mark_dirty
from apps.logs import crypto
from apps.logs.models import EventState, ExportState, LogEvent, LogFinding, TeamLogPolicy
from apps.logs.schemas import LogEventIn

logger = logging.getLogger(__name__)

LOG_WRITERS = frozenset({Role.ADMIN, Role.ENGINEER})
QUARANTINE_MANAGERS = frozenset({Role.ADMIN, Role.GOVERNANCE})


@dataclass
class IngestResult:
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    accepted_ids: list[int] = field(default_factory=list)


STAGED_FIELDS = (
    "team",
    "request_id",
    "state",
    "app",
    "prompt",
    "prompt_version",
    "model",
    "started_at",
    "ended_at",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "status",
    "staged_payload",
    "received_at",
    "output",
    "error",
    "metadata",
    "end_user",
    "search_text",
    "has_pii",
    "pii_types",
    "redaction_mode",
    "scanner",
    "attempts",
    "last_error",
)


def _staged_values(team: Team, event: LogEventIn, now) -> tuple:
    """One staged row in STAGED_FIELDS order: figures as sent, every piece of text sealed."""
    messages = (
        event.input
        if isinstance(event.input, str)
        else [{"role": m.role, "content": m.content} for m in event.input]
    )
    payload = {
        "input": messages,
        "output": event.output,
        "error": event.error,
        "metadata": event.metadata,
        "end_user": event.end_user,
    }
    return (
        team.pk,
        event.request_id,
        EventState.STAGED,
        event.app,
        event.prompt,
        event.prompt_version,
        event.model,
        event.started_at,
        event.ended_at,
        event.tokens_in,
        event.tokens_out,
        event.latency_ms,
        event.status,
        crypto.seal(payload),
        now,
        "",
        "",
        {},
        "",
        "",
        False,
        [],
        "",
        "",
        0,
        "",
    )


def log_events_ingest(*, actor: User, team: Team, events: Sequence[tuple[int, LogEventIn]]) -> IngestResult:
    """Stage the valid events of a batch (index, event). A request id already known for the team, or
    repeated in the batch, counts as a duplicate: a retried batch never creates a second row."""
    if not user_has_role(actor, team.pk, LOG_WRITERS):
        raise PermissionDenied("You cannot send logs to this team.")
    result = IngestResult()
    now = timezone.now()
    unique: dict[str, LogEventIn] = {}
    for _, event in events:
        if event.request_id in unique:
            result.duplicate += 1
        else:
            unique[event.request_id] = event
    rows = {
        rid: _staged_values(team, event, now) for rid, event in unique.items()
    }  # encrypt outside the lock
    for attempt in range(3):
        try:
            with transaction.atomic():
                known = _team_event_ids(team, list(unique))
                fresh = [rid for rid in rows if rid not in known]
                bulk_insert_values(LogEvent, STAGED_FIELDS, [rows[rid] for rid in fresh])
                ids = sorted(_team_event_ids(team, fresh).values())
                transaction.on_commit(partial(_dispatch_scan, ids))
            break
        except IntegrityError:  # a concurrent batch with the same request ids committed first: look again
            if attempt == 2:
                raise
    result.accepted = len(fresh)
    result.duplicate += len(known)
    result.accepted_ids = ids
    return result


def _team_event_ids(team: Team, request_ids: list[str]) -> dict[str, int]:
    """The team's events with these request ids (request id → pk). Found by request id alone, the
    unique index's first column, so a lookup costs the batch's size, never the size of the team's log;
    another team's event with the same request id is left out here."""
    found = (
        LogEvent.objects.filter(request_id__in=request_ids)
        .order_by()
        .values_list("team_id", "request_id", "pk")
    )
    return {rid: pk for team_id, rid, pk in found if team_id == team.pk}


def _dispatch_scan(ids: list[int]) -> None:
    from workers.logs import scan_events

    chunk = settings.LOG_SCAN_CHUNK

    def send() -> None:
        for start in range(0, len(ids), chunk):
            scan_events.delay(ids[start : start + chunk])

    send_safely(send, "the scan of new log events")  # beat's dispatch_pending finds them staged


def _texts_of(payload: dict[str, Any]) -> list[str]:
    """Every piece of free text in an event, in a fixed order (see _rebuild)."""
    texts: list[str] = []
    messages = payload["input"]
    if isinstance(messages, str):
        texts.append(messages)
    else:
        texts.extend(m["content"] for m in messages)
    texts.extend([payload.get("output") or "", payload.get("error") or "", payload.get("end_user") or ""])
    texts.extend(_metadata_strings(payload.get("metadata") or {}))
    return texts


def _metadata_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k in sorted(value) for s in [str(k), *_metadata_strings(value[k])]]
    if isinstance(value, list):
        return [s for v in value for s in _metadata_strings(v)]
    return []


def _replace_metadata(value: Any, redacted: Iterable[str]) -> Any:
    it = iter(redacted)

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return next(it)
        if isinstance(v, dict):
            return {next(it): walk(v[k]) for k in sorted(v)}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(value)


def _rebuild(row: LogEvent, payload: dict[str, Any], results: list[ScanResult]) -> None:
    texts = [r.redacted for r in results]
    messages = payload["input"]
    if isinstance(messages, str):
        row.input = [{"role": "user", "content": texts[0]}]
        n = 1
    else:
        row.input = [{"role": m["role"], "content": texts[i]} for i, m in enumerate(messages)]
        n = len(messages)
    row.output, row.error, row.end_user = texts[n], texts[n + 1], texts[n + 2][:300]
    row.metadata = _replace_metadata(payload.get("metadata") or {}, texts[n + 3 :])
    row.search_text = "\n".join(t for t in texts if t).lower()


def _policies(team_ids: set[int]) -> dict[int, RedactionPolicy]:
    modes = dict(TeamLogPolicy.objects.filter(team_id__in=team_ids).values_list("team_id", "redaction_mode"))
    key = crypto.pii_token_key()
    return {
        tid: RedactionPolicy(mode=RedactionMode(modes.get(tid, RedactionMode.REPLACE)), token_key=key)
        for tid in team_ids
    }


def log_events_scan(*, event_ids: Sequence[int]) -> dict[str, int]:
    """Scan staged (or due quarantined) events and store them redacted. Safe to run twice, or in two
    workers at once: an event already stored is left alone."""
    rows = list(
        LogEvent.objects.filter(pk__in=event_ids, state__in=[EventState.STAGED, EventState.QUARANTINED])
        .exclude(staged_payload=None)
        .only(
            "id",
            "team_id",
            "staged_payload",
            "attempts",
            "model",
            "started_at",
            "ended_at",
            "tokens_in",
            "tokens_out",
            "latency_ms",
        )
    )
    if not rows:
        return {"stored": 0, "quarantined": 0}
    scanner = get_scanner()
    policies = _policies({r.team_id for r in rows})
    prepared: list[tuple[LogEvent, dict[str, Any], list[str]]] = []
    for row in rows:
        payload = crypto.unseal(row.staged_payload)
        prepared.append((row, payload, _texts_of(payload)))
    by_team: dict[int, list[int]] = {}
    for index, (row, _, _) in enumerate(prepared):
        by_team.setdefault(row.team_id, []).append(index)
    results_per_row: list[list[ScanResult]] = [[] for _ in prepared]
    try:
        for team_id, indexes in by_team.items():
            flat = [text for i in indexes for text in prepared[i][2]]
            scanned = scanner.scan(flat, policies[team_id])
            cursor = 0
            for i in indexes:
                count = len(prepared[i][2])
                results_per_row[i] = scanned[cursor : cursor + count]
                cursor += count
    except ScannerUnavailable as exc:
        quarantined = _quarantine([row.pk for row in rows], str(exc))
        return {"stored": 0, "quarantined": quarantined}
    return {"stored": _store(prepared, results_per_row, scanner.name, policies), "quarantined": 0}


STORED_FIELDS = (
    "input",
    "output",
    "error",
    "metadata",
    "end_user",
    "search_text",
    "state",
    "staged_payload",
    "has_pii",
    "pii_types",
    "redaction_mode",
    "scanner",
    "stored_at",
    "next_attempt_at",
    "last_error",
    "cost",
    "latency_bucket",
)


def _store(
    prepared: list[tuple[LogEvent, dict[str, Any], list[str]]],
    results: list[list[ScanResult]],
    scanner_name: str,
    policies: dict[int, RedactionPolicy],
) -> int:
    now = timezone.now()
    prices = PriceBook(row.model for row, _, _ in prepared)
    with transaction.atomic():
        still_pending = set(
            LogEvent.objects.select_for_update()
            .filter(
                pk__in=[row.pk for row, _, _ in prepared],
                state__in=[EventState.STAGED, EventState.QUARANTINED],
            )
            .values_list("pk", flat=True)
        )
        updated: list[LogEvent] = []
        findings: list[tuple[int, str, int, str]] = []
        for (row, payload, _), scanned in zip(prepared, results, strict=True):
            if row.pk not in still_pending:
                continue
            _rebuild(row, payload, scanned)
            per_type: dict[str, tuple[int, str]] = {}
            for result in scanned:
                for finding in result.findings:
                    count, likelihood = per_type.get(finding.info_type, (0, "VERY_UNLIKELY"))
                    strongest = max(likelihood, finding.likelihood, key=_likelihood_rank)
                    per_type[finding.info_type] = (count + 1, strongest)
            findings.extend((row.pk, t, c, lk) for t, (c, lk) in per_type.items())
            row.cost = prices.cost(row.model, row.started_at, row.tokens_in, row.tokens_out)
            latency: float | None = row.latency_ms
            if latency is None and row.ended_at is not None:
                latency = (row.ended_at - row.started_at).total_seconds() * 1000
            row.latency_bucket = latency_bucket_of(latency) if latency is not None else None
            row.state = EventState.STORED
            row.staged_payload = None
            row.has_pii = bool(per_type)
            row.pii_types = sorted(per_type)
            row.redaction_mode = policies[row.team_id].mode.value
            row.scanner = scanner_name
            row.stored_at = now
            row.next_attempt_at = None
            row.last_error = ""
            updated.append(row)
        bulk_update(updated, STORED_FIELDS)
        hours_mark_dirty((row.team_id, row.started_at) for row in updated)
        bulk_insert_values(LogFinding, ("event", "info_type", "count", "likelihood"), findings)
    return len(updated)


def _likelihood_rank(name: str) -> int:
    return LIKELIHOODS.index(name) if name in LIKELIHOODS else 0


def _backoff(attempts: int) -> timedelta:
    seconds = min(
        settings.LOG_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0)), settings.LOG_RETRY_MAX_SECONDS
    )
    return timedelta(seconds=seconds)


def _quarantine(ids: list[int], reason: str) -> int:
    now = timezone.now()
    reason = reason[:500]
    count = 0
    with transaction.atomic():
        for row in (
            LogEvent.objects.select_for_update()
            .filter(pk__in=ids, state__in=[EventState.STAGED, EventState.QUARANTINED])
            .only("id", "attempts")
        ):
            attempts = row.attempts + 1
            LogEvent.objects.filter(pk=row.pk).update(
                state=EventState.QUARANTINED,
                attempts=attempts,
                next_attempt_at=now + _backoff(attempts),
                last_error=reason,
            )
            count += 1
    logger.warning("PII scanner unavailable: %d events quarantined (%s)", count, reason)
    return count


def log_events_dispatch_pending(*, now=None, limit: int = 20_000) -> int:
    """Beat: re-dispatch quarantined events whose retry is due, and staged events whose scan task was
    lost (older than the grace period). Returns how many were dispatched."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=settings.LOG_STAGED_GRACE_SECONDS)
    ids = list(
        LogEvent.objects.filter(
            Q(state=EventState.QUARANTINED, next_attempt_at__lte=now)
            | Q(state=EventState.STAGED, received_at__lte=grace)
        )
        .order_by("id")
        .values_list("pk", flat=True)[:limit]
    )
    _dispatch_scan(ids)
    return len(ids)


@transaction.atomic
def quarantine_retry_now(*, actor: User, team: Team) -> int:
    """Governance asks for an immediate retry of a team's quarantined events."""
    if not user_has_role(actor, team.pk, QUARANTINE_MANAGERS):
        raise NotFound("No such team.")
    ids = list(LogEvent.objects.filter(team=team, state=EventState.QUARANTINED).values_list("pk", flat=True))
    LogEvent.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now())
    audit_event_record(
        actor=actor, action="logs.quarantine_retried", target=team, team=team, changes={"events": len(ids)}
    )
    transaction.on_commit(lambda: _dispatch_scan(ids))
    return len(ids)


EXPORT_BATCH = 500


def export_row(event: LogEvent, team_slug: str) -> dict[str, Any]:
    return {
        "request_id": event.request_id,
        "team": team_slug,
        "app": event.app or None,
        "prompt": event.prompt or None,
        "prompt_version": event.prompt_version,
        "model": event.model,
        "started_at": event.started_at.isoformat(),
        "ended_at": event.ended_at.isoformat() if event.ended_at else None,
        "status": event.status,
        "error": event.error or None,
        "input": event.input,
        "output": event.output or None,
        "tokens_in": event.tokens_in,
        "tokens_out": event.tokens_out,
        "latency_ms": event.latency_ms,
        "end_user": event.end_user or None,
        "metadata": event.metadata,
        "pii_types": event.pii_types,
        "stored_at": event.stored_at.isoformat() if event.stored_at else None,
    }


EXPORT_LEASE = timedelta(minutes=10)


def log_events_export(*, max_batches: int = 20) -> int:
    """Beat: send stored, not yet exported events to the warehouse, oldest first. An event is marked
    exported only after the warehouse took it; a failed export is retried from the same place, and the
    warehouse skips a re-sent request id. Never sends staged or quarantined events. One export runs at a
    time: it holds a lease on the warehouse's ExportState row (a crashed export's lease expires)."""
    warehouse = get_warehouse()
    state, _ = ExportState.objects.get_or_create(warehouse=warehouse.name)
    if warehouse.name == "local":
        return 0
    now = timezone.now()
    claimed = (
        ExportState.objects.filter(pk=state.pk)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(lease_until=now + EXPORT_LEASE)
    )
    if not claimed:
        return 0
    sent = 0
    try:
        for _ in range(max_batches):
            batch = list(
                LogEvent.objects.filter(state=EventState.STORED, exported_at__isnull=True)
                .select_related("team")
                .order_by("stored_at", "id")[:EXPORT_BATCH]
            )
            if not batch:
                break
            try:
                warehouse.export([export_row(e, e.team.slug) for e in batch])
            except WarehouseUnavailable as exc:
                ExportState.objects.filter(pk=state.pk).update(
                    last_run_at=timezone.now(), last_error=str(exc)[:500]
                )
                raise
            done = timezone.now()
            with transaction.atomic():
                LogEvent.objects.filter(pk__in=[e.pk for e in batch]).update(exported_at=done)
                ExportState.objects.filter(pk=state.pk).update(
                    last_exported_at=batch[-1].stored_at,
                    last_run_at=done,
                    last_error="",
                    exported_total=F("exported_total") + len(batch),
                )
            sent += len(batch)
    finally:
        ExportState.objects.filter(pk=state.pk).update(lease_until=None)
    return sent


def log_retention_apply(*, now=None) -> dict[str, int]:
    """Beat: delete each team's stored events older than its retention, auditing how many. Staged and
    quarantined events are never deleted (nothing accepted is dropped before it is stored)."""
    now = now or timezone.now()
    days = dict(TeamLogPolicy.objects.values_list("team_id", "retention_days"))
    deleted: dict[str, int] = {}
    for team in Team.objects.filter(log_events__isnull=False).distinct():
        cutoff = now - timedelta(days=days.get(team.pk, settings.LOG_DEFAULT_RETENTION_DAYS))
        with transaction.atomic():
            old = LogEvent.objects.filter(team=team, state=EventState.STORED, started_at__lt=cutoff)
            count = old.count()
            if not count:
                continue
            LogFinding.objects.filter(event__in=old).delete()
            old.delete()
            audit_event_record(
                actor=None,
                action="logs.retention_applied",
                target=team,
                team=team,
                changes={
                    "deleted": count,
                    "older_than": cutoff.isoformat(),
                    "retention_days": days.get(team.pk, settings.LOG_DEFAULT_RETENTION_DAYS),
                },
            )
        deleted[team.slug] = count
    return deleted


@transaction.atomic
def team_log_policy_set(
    *, actor: User, team: Team, redaction_mode: str, retention_days: int
) -> TeamLogPolicy:
    if not user_has_role(actor, team.pk, QUARANTINE_MANAGERS):
        raise PermissionDenied("Only governance or administrators set a team's log policy.")
    mode = RedactionMode(redaction_mode)
    if not 1 <= retention_days <= 3650:
        raise Unprocessable("Retention is between 1 and 3650 days.", code="invalid_retention")
    policy, _ = TeamLogPolicy.objects.select_for_update().get_or_create(team=team)
    before = {"redaction_mode": policy.redaction_mode, "retention_days": policy.retention_days}
    policy.redaction_mode, policy.retention_days = mode.value, retention_days
    policy.save()
    audit_event_record(
        actor=actor,
        action="logs.policy_changed",
        target=policy,
        team=team,
        changes={"from": before, "to": {"redaction_mode": mode.value, "retention_days": retention_days}},
    )
    return policy
