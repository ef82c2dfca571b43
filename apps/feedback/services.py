"""Writes for human feedback: schemas, queues (their items and slots), leasing the next item, submitting
and skipping, adjudication, end-user feedback and dataset export.

Assignment: `annotation_next` hands an annotator one slot of an item they have not rated, inside one
transaction: on PostgreSQL the candidate row is locked with `SELECT … FOR UPDATE SKIP LOCKED`, so two
annotators never wait on (or get) the same slot; on SQLite the transaction takes the write lock when it
begins (BEGIN IMMEDIATE), so claims are serialised. Either way the claim itself is a conditional UPDATE
(`WHERE state = 'open' OR the lease expired`) and the unique constraints on (item, slot number) and
(item, annotator) refuse anything else, so a lost race retries instead of double-assigning.

Audit: creating schemas and queues, adjudicating and exporting datasets are audited. Individual
annotations are not (like log events: they are data, recorded append-only with their annotator and
time), and neither is end-user feedback, which applications send at volume.
"""

import hashlib
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NoReturn

from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Membership, Team, User
from apps.accounts.roles import Role
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.feedback.models import (
    NEGATIVE_FEEDBACK,
    Adjudication,
    Annotation,
    AnnotationQueue,
    AnnotationSlot,
    CriterionKind,
    Dataset,
    DatasetKind,
    EndUserFeedback,
    QueueItem,
    QueueKind,
    QueueStatus,
    RatingSchema,
    SlotState,
)
from apps.feedback.schemas import criteria_validate, schema_has_preference, values_validate
from apps.logs.models import EventState, LogEvent

FEEDBACK_MANAGERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER})  # schemas, queues, results
ADJUDICATORS = frozenset({Role.GOVERNANCE})
ANNOTATORS = frozenset({Role.ANNOTATOR})
FEEDBACK_SENDERS = frozenset({Role.ADMIN, Role.ENGINEER})  # applications' tokens (as for logs)
DATASET_EXPORTERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER})

MAX_QUEUE_SIZE = 1_000_000
MAX_OVERLAP = 10
MAX_COMMENT = 4000
FILTER_KEYS = (
    "app",
    "prompt",
    "prompt_version",
    "model",
    "since",
    "until",
    "negative_feedback",
    "prompt_version_b",
    "model_b",
)


def _require(actor: User, team: Team, roles: Iterable[str], message: str) -> None:
    if not user_has_role(actor, team.pk, roles):
        raise PermissionDenied(message)


# Schemas


@transaction.atomic
def rating_schema_create(
    *, actor: User, team: Team, name: str, criteria: Any, description: str = ""
) -> RatingSchema:
    _require(actor, team, FEEDBACK_MANAGERS, "Only governance, engineers and administrators define schemas.")
    clean = criteria_validate(criteria)
    if RatingSchema.objects.filter(team=team, name=name).exists():
        raise Conflict(f"{team.slug} already has a schema named {name!r}.", code="schema_exists")
    schema = RatingSchema.objects.create(
        team=team, name=name, description=description, criteria=clean, created_by=actor
    )
    audit_event_record(
        actor=actor,
        action="feedback.schema_created",
        target=schema,
        changes={"name": name, "criteria": clean},
    )
    return schema


# Queues


def _sample_key(*parts: Any) -> int:
    """A stable pseudo-random number in [0, 2**32) for deterministic sampling."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big")


def _events(team: Team, filters: dict[str, Any]) -> Any:
    qs = LogEvent.objects.filter(team=team, state=EventState.STORED).exclude(output="")
    if filters.get("app"):
        qs = qs.filter(app=filters["app"])
    if filters.get("prompt"):
        qs = qs.filter(prompt=filters["prompt"])
    if filters.get("since"):
        qs = qs.filter(started_at__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(started_at__lt=filters["until"])
    if filters.get("negative_feedback"):
        negative = EndUserFeedback.objects.filter(
            NEGATIVE_FEEDBACK, team=team, request_id=OuterRef("request_id")
        )
        qs = qs.filter(Exists(negative))
    return qs


def _side(qs: Any, version: int | None, model: str) -> Any:
    if version is not None:
        qs = qs.filter(prompt_version=version)
    if model:
        qs = qs.filter(model=model)
    return qs


def _input_key(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _clean_filters(kind: str, filters: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(filters) - set(FILTER_KEYS))
    if unknown:
        raise Unprocessable(f"Unknown filters: {', '.join(unknown)}.", code="invalid_filter")
    clean = {k: v for k, v in filters.items() if v not in (None, "", False)}
    for key in ("since", "until"):
        if isinstance(clean.get(key), datetime | date):
            clean[key] = clean[key].isoformat()
    if kind == QueueKind.PAIRWISE:
        if "prompt_version_b" not in clean and "model_b" not in clean:
            raise Unprocessable(
                "A pairwise queue compares two prompt versions or two models: give prompt_version_b "
                "or model_b (and prompt_version or model for side A).",
                code="invalid_filter",
            )
    elif "prompt_version_b" in clean or "model_b" in clean:
        raise Unprocessable("Only a pairwise queue has a side B.", code="invalid_filter")
    return clean


def _candidates(team: Team, kind: str, filters: dict[str, Any]) -> list[tuple[int, int | None]]:
    base = _events(team, filters)
    if kind == QueueKind.SAMPLE:
        qs = _side(base, filters.get("prompt_version"), filters.get("model", ""))
        return [(pk, None) for pk in qs.values_list("pk", flat=True).iterator(chunk_size=5000)]
    side_a = _side(base, filters.get("prompt_version"), filters.get("model", ""))
    side_b = _side(base, filters.get("prompt_version_b"), filters.get("model_b", ""))
    by_input: dict[str, int] = {}
    for pk, input_ in (
        side_a.order_by("started_at", "pk").values_list("pk", "input").iterator(chunk_size=2000)
    ):
        by_input.setdefault(_input_key(input_), pk)
    pairs: list[tuple[int, int | None]] = []
    used: set[str] = set()
    for pk, input_ in (
        side_b.order_by("started_at", "pk").values_list("pk", "input").iterator(chunk_size=2000)
    ):
        key = _input_key(input_)
        if key in by_input and key not in used and by_input[key] != pk:
            used.add(key)
            pairs.append((by_input[key], pk))
    return pairs


def _annotator_ids(team: Team) -> set[int]:
    return set(Membership.objects.filter(team=team, role__in=ANNOTATORS).values_list("user_id", flat=True))


@transaction.atomic
def annotation_queue_create(
    *,
    actor: User,
    team: Team,
    name: str,
    schema: RatingSchema,
    size: int,
    kind: str = QueueKind.SAMPLE,
    filters: dict[str, Any] | None = None,
    sampling_rate: float = 1.0,
    overlap: int = 1,
    lease_minutes: int = 30,
    instructions: str = "",
    due_date: date | None = None,
    assignees: Sequence[User] = (),
) -> AnnotationQueue:
    """A queue and its items: the stored events matching the filters (or pairs of answers to the same
    input), each kept when the hash of its id falls under the sampling rate, in hash order, up to `size`
    (so the same filters and rate always choose the same items). Every item gets `overlap` open slots."""
    _require(actor, team, FEEDBACK_MANAGERS, "Only governance, engineers and administrators create queues.")
    if schema.team_id != team.pk:
        raise NotFound("No such schema in this team.", code="schema_not_found")
    if kind not in QueueKind.values:
        raise Unprocessable(f"kind must be one of {', '.join(QueueKind.values)}.", code="invalid_kind")
    if kind == QueueKind.PAIRWISE and not schema_has_preference(schema.criteria):
        raise Unprocessable(
            "A pairwise queue needs a schema with a preference criterion.", code="invalid_schema"
        )
    if kind == QueueKind.SAMPLE and schema_has_preference(schema.criteria):
        raise Unprocessable("A preference criterion needs a pairwise queue.", code="invalid_schema")
    if not 0 < sampling_rate <= 1:
        raise Unprocessable("The sampling rate is a share in (0, 1].", code="invalid_rate")
    if not 1 <= size <= MAX_QUEUE_SIZE:
        raise Unprocessable(f"The size is between 1 and {MAX_QUEUE_SIZE}.", code="invalid_size")
    if not 1 <= overlap <= MAX_OVERLAP:
        raise Unprocessable(f"The overlap (k) is between 1 and {MAX_OVERLAP}.", code="invalid_overlap")
    if not 1 <= lease_minutes <= 24 * 60:
        raise Unprocessable("A lease lasts between 1 minute and 24 hours.", code="invalid_lease")
    annotators = _annotator_ids(team)
    strangers = sorted(u.username for u in assignees if u.pk not in annotators)
    if strangers:
        raise Unprocessable(
            f"Not annotators of {team.slug}: {', '.join(strangers)}.",
            code="invalid_assignees",
            details={"users": strangers},
        )
    if assignees and len(assignees) < overlap:
        raise Unprocessable(
            f"An overlap of {overlap} needs at least {overlap} assignees.", code="invalid_overlap"
        )
    clean = _clean_filters(kind, filters or {})
    if AnnotationQueue.objects.filter(team=team, name=name).exists():
        raise Conflict(f"{team.slug} already has a queue named {name!r}.", code="queue_exists")

    threshold = sampling_rate * 2**32
    chosen = []
    for a, b in _candidates(team, kind, clean):
        key = _sample_key(a, b or "")
        if key < threshold:
            chosen.append((key, a, b))
    chosen.sort()
    chosen = chosen[:size]
    if not chosen:
        raise Unprocessable(
            "No stored log matches these filters: the queue would be empty.", code="empty_queue"
        )

    queue = AnnotationQueue.objects.create(
        team=team,
        name=name,
        schema=schema,
        kind=kind,
        filters=clean,
        sampling_rate=sampling_rate,
        size=size,
        overlap=overlap,
        lease_minutes=lease_minutes,
        instructions=instructions,
        due_date=due_date,
        item_count=len(chosen),
        created_by=actor,
    )
    if assignees:
        queue.assignees.set(assignees)
    items = QueueItem.objects.bulk_create(
        [QueueItem(queue=queue, position=i, event_id=a, event_b_id=b) for i, (_, a, b) in enumerate(chosen)],
        batch_size=2000,
    )
    if not all(item.pk for item in items):  # backends that do not return ids
        items = list(QueueItem.objects.filter(queue=queue).order_by("position"))
    AnnotationSlot.objects.bulk_create(
        [
            AnnotationSlot(queue=queue, item=item, number=n, position=item.position)
            for item in items
            for n in range(overlap)
        ],
        batch_size=2000,
    )
    audit_event_record(
        actor=actor,
        action="feedback.queue_created",
        target=queue,
        changes={
            "name": name,
            "schema": schema.name,
            "kind": kind,
            "filters": clean,
            "sampling_rate": sampling_rate,
            "size": size,
            "items": len(chosen),
            "overlap": overlap,
            "assignees": sorted(u.username for u in assignees),
            "due_date": due_date.isoformat() if due_date else None,
        },
    )
    return queue


@transaction.atomic
def annotation_queue_close(*, actor: User, queue: AnnotationQueue) -> AnnotationQueue:
    queue = AnnotationQueue.objects.select_for_update(of=("self",)).select_related("team").get(pk=queue.pk)
    _require(
        actor, queue.team, FEEDBACK_MANAGERS, "Only governance, engineers and administrators close queues."
    )
    if queue.status == QueueStatus.CLOSED:
        raise Conflict("The queue is already closed.", code="queue_closed")
    queue.status = QueueStatus.CLOSED
    queue.save(update_fields=["status", "updated_at"])
    audit_event_record(
        actor=actor, action="feedback.queue_closed", target=queue, changes={"status": "closed"}
    )
    return queue


# Annotating


def queue_may_annotate(user: User, queue: AnnotationQueue) -> bool:
    """Annotators of the queue's team who are among its assignees (every annotator of the team when
    the queue names none)."""
    if not user_has_role(user, queue.team_id, ANNOTATORS):
        return False
    assigned = getattr(queue, "_assignee_ids", None)
    if assigned is None:
        assigned = set(queue.assignees.values_list("pk", flat=True))
        queue._assignee_ids = assigned  # type: ignore[attr-defined]
    return not assigned or user.pk in assigned


def _require_annotator(user: User, queue: AnnotationQueue) -> None:
    if not queue_may_annotate(user, queue):
        raise PermissionDenied("You are not an annotator of this queue.", code="not_assigned")


_SLOT_COLUMNS = (
    "id",
    "queue_id",
    "item_id",
    "number",
    "position",
    "state",
    "annotator_id",
    "leased_at",
    "leased_until",
)


def _slot_sql() -> dict[str, str]:
    """The claim statements, built once from the model's table and column names.

    A claim is one statement: UPDATE the first claimable slot, chosen by a subquery, on condition that it is
    still claimable, RETURNING it. The subquery skips items the annotator already holds or rated (the
    (item, annotator) index) and, on PostgreSQL, rows another transaction is claiming (FOR UPDATE SKIP
    LOCKED), so concurrent annotators take different slots without waiting; SQLite runs one writer at a time
    (BEGIN IMMEDIATE)."""
    quote = connection.ops.quote_name
    table = quote(AnnotationSlot._meta.db_table)
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    returning = ", ".join(quote(c) for c in _SLOT_COLUMNS)
    mine = f"NOT EXISTS (SELECT 1 FROM {table} t WHERE t.item_id = s.item_id AND t.annotator_id = %(user)s)"  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
    claim = (
        f"UPDATE {table} SET state = 'leased', annotator_id = %(user)s, leased_at = %(now)s, "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        f"leased_until = %(until)s WHERE id = (SELECT s.id FROM {table} s WHERE {{where}} AND {mine} "
        f"ORDER BY {{order}} LIMIT 1{lock}) AND ({{again}}) RETURNING {returning}"
    )
    annotation_table = quote(Annotation._meta.db_table)
    columns = ", ".join(quote(f.column) for f in _annotation_fields())
    return {
        "done": f"UPDATE {table} SET state = 'done', leased_until = NULL WHERE id = %(id)s "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        "AND annotator_id = %(user)s AND state = 'leased'",
        "annotate": f"INSERT INTO {annotation_table} ({columns}) "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        f"VALUES ({', '.join(['%s'] * len(ANNOTATION_FIELDS))}) RETURNING id",
        "held": f"SELECT {returning} FROM {table} WHERE queue_id = %(queue)s AND annotator_id = %(user)s "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        "AND state = 'leased' ORDER BY id LIMIT 1",
        "renew": f"UPDATE {table} SET leased_until = %(until)s WHERE id = %(id)s "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        "AND annotator_id = %(user)s AND state = 'leased'",
        "any_expired": f"SELECT 1 FROM {table} WHERE queue_id = %(queue)s AND state = 'leased' "  # noqa: S608  # nosec B608 # names from the model metadata, values as parameters
        "AND leased_until < %(now)s LIMIT 1",
        "expired": claim.format(
            where="s.queue_id = %(queue)s AND s.state = 'leased' AND s.leased_until < %(now)s",
            order="s.leased_until, s.id",
            again="state = 'leased' AND leased_until < %(now)s",
        ),
        "fresh": claim.format(
            where="s.queue_id = %(queue)s AND s.state = 'open'",
            order="s.position, s.number",
            again="state = 'open'",
        ),
    }


_SQL: dict[str, dict[str, str]] = {}
_SQLITE_WRITER = threading.RLock()


@contextmanager
def _one_writer() -> Iterator[None]:
    """On SQLite, the threads of this process take turns here for the hot writes (claim, submit). SQLite
    has one writer at a time, and a writer that finds the database locked waits in SQLite's busy handler,
    which polls with sleeps of up to 100 ms: under tens of annotators that makes long tails. Here the
    waiting threads sleep on a lock and are woken in turn. (Other processes still use the busy handler.)"""
    if connection.vendor != "sqlite":
        yield
        return
    with _SQLITE_WRITER:
        yield


def _slot_from(row: Sequence[Any]) -> AnnotationSlot:
    """A slot from a raw row (SQLite returns datetimes as text; PostgreSQL as aware datetimes)."""
    values = dict(zip(_SLOT_COLUMNS, row, strict=True))
    for name in ("leased_at", "leased_until"):
        value = values[name]
        if isinstance(value, str):
            value = parse_datetime(value)
        if isinstance(value, datetime) and timezone.is_naive(value):
            value = timezone.make_aware(value, UTC)
        values[name] = value
    return AnnotationSlot(**values)


class LeaseLost(Conflict):
    default_code = "lease_lost"


def annotation_next(
    *, actor: User, queue: AnnotationQueue, now: datetime | None = None
) -> AnnotationSlot | None:
    """The slot the annotator works on: the one they already hold in this queue (its lease renewed),
    else an abandoned slot whose lease expired, else the first open slot of an item they have not rated;
    None when nothing is left for them."""
    _require_annotator(actor, queue)
    if queue.status != QueueStatus.OPEN:
        return None
    sql = _SQL.get(connection.vendor) or _SQL.setdefault(connection.vendor, _slot_sql())
    for _attempt in range(20):
        now_ = now or timezone.now()
        params = {
            "queue": queue.pk,
            "user": actor.pk,
            "now": connection.ops.adapt_datetimefield_value(now_),
            "until": connection.ops.adapt_datetimefield_value(now_ + timedelta(minutes=queue.lease_minutes)),
        }
        try:
            # No enclosing transaction: each statement is atomic on its own, so the write lock (SQLite's
            # one writer) is held for one statement, never across Python code waiting for the GIL.
            with connection.cursor() as cursor:
                cursor.execute(sql["held"], params)
                row = cursor.fetchone()
                cursor.execute(sql["any_expired"], params)
                kinds = ("expired", "fresh") if cursor.fetchone() else ("fresh",)  # a read spares a write
            with _one_writer(), connection.cursor() as cursor:
                if row is not None:
                    cursor.execute(sql["renew"], {**params, "id": row[0]})
                    if cursor.rowcount != 1:
                        continue  # the lease expired and went to someone else meanwhile: look again
                    slot = _slot_from(row)
                    slot.leased_until = now_ + timedelta(minutes=queue.lease_minutes)
                    return slot
                for kind in kinds:
                    cursor.execute(sql[kind], params)
                    row = cursor.fetchone()
                    if row is not None:
                        return _slot_from(row)
                if not _claimable_left(queue, actor):
                    return None
        except IntegrityError:
            continue  # a parallel request of the same annotator took a slot of this item: look again
    raise Conflict("Too many annotators at once: try again.", code="busy")


def _claimable_left(queue: AnnotationQueue, actor: User) -> bool:
    """Whether a claim that found nothing lost a race (PostgreSQL skipped a row being claimed): then the
    annotator asks again; else nothing is left for them."""
    if not connection.features.has_select_for_update_skip_locked:
        return False
    mine = AnnotationSlot.objects.filter(item_id=OuterRef("item_id"), annotator_id=actor.pk)
    return (
        AnnotationSlot.objects.filter(queue_id=queue.pk, state=SlotState.OPEN).filter(~Exists(mine)).exists()
    )


def _held_slot(actor: User, slot_id: int) -> AnnotationSlot:
    slot = (
        AnnotationSlot.objects.select_for_update(of=("self",))
        .select_related("queue", "queue__schema", "queue__team")
        .filter(pk=slot_id)
        .first()
    )
    if slot is None or slot.annotator_id != actor.pk:
        if slot is not None and queue_may_annotate(actor, slot.queue):
            raise LeaseLost("This item's lease expired and it went to someone else: take the next one.")
        raise NotFound("No such item in your queues.")
    if slot.state == SlotState.DONE:
        raise Conflict("You already rated this item.", code="already_rated")
    if slot.state != SlotState.LEASED:
        raise LeaseLost("You no longer hold this item: take the next one.")
    return slot


def annotation_submit(*, actor: User, slot_id: int, values: Any, now: datetime | None = None) -> Annotation:
    """Record the annotator's values for the slot they hold. A lease that expired is still honoured if
    nobody took the slot meanwhile. Everything is read and validated first; the write is two statements
    (the slot done on condition that the annotator still holds it, and the annotation) in one short
    transaction."""
    slot = AnnotationSlot.objects.select_related("queue__schema").filter(pk=slot_id).first()
    if slot is None or slot.annotator_id != actor.pk or slot.state != SlotState.LEASED:
        _refuse(actor, slot)
    clean = values_validate(slot.queue.schema.criteria, values)
    now = now or timezone.now()
    annotation = Annotation(
        queue_id=slot.queue_id,
        item_id=slot.item_id,
        slot_id=slot.pk,
        annotator_id=actor.pk,
        values=clean,
        seconds=(now - slot.leased_at).total_seconds() if slot.leased_at else None,
        submitted_at=now,
    )
    params = [f.get_db_prep_save(getattr(annotation, f.attname), connection) for f in _annotation_fields()]
    sql = _SQL.get(connection.vendor) or _SQL.setdefault(connection.vendor, _slot_sql())
    with _one_writer(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql["done"], {"id": slot.pk, "user": actor.pk})
        if cursor.rowcount != 1:
            raise LeaseLost("This item's lease expired and it went to someone else: take the next one.")
        cursor.execute(sql["annotate"], params)
        annotation.pk = cursor.fetchone()[0]
    return annotation


def _annotation_fields() -> list[Any]:
    return [Annotation._meta.get_field(name) for name in ANNOTATION_FIELDS]


ANNOTATION_FIELDS = ("queue", "item", "slot", "annotator", "values", "seconds", "submitted_at")


def _refuse(actor: User, slot: AnnotationSlot | None) -> NoReturn:
    if slot is not None and slot.annotator_id == actor.pk and slot.state == SlotState.DONE:
        raise Conflict("You already rated this item.", code="already_rated")
    if slot is not None and queue_may_annotate(actor, slot.queue):
        raise LeaseLost("This item's lease expired and it went to someone else: take the next one.")
    raise NotFound("No such item in your queues.")


@transaction.atomic
def annotation_skip(*, actor: User, slot_id: int) -> None:
    """Pass on an item: its slot goes back to the pool (a fresh open slot, same number) and the annotator
    is not offered the item again."""
    slot = _held_slot(actor, slot_id)
    slot.state = SlotState.SKIPPED
    slot.leased_until = None
    slot.save(update_fields=["state", "leased_until"])
    AnnotationSlot.objects.create(
        queue_id=slot.queue_id, item_id=slot.item_id, number=slot.number, position=slot.position
    )


# Adjudication


@transaction.atomic
def adjudication_set(*, actor: User, item: QueueItem, values: Any, note: str = "") -> Adjudication:
    """Governance's final values for an item (any subset of the criteria), replacing earlier ones."""
    item = QueueItem.objects.select_related("queue", "queue__schema", "queue__team").get(pk=item.pk)
    _require(actor, item.queue.team, ADJUDICATORS, "Only governance adjudicates.")
    criteria = [dict(c, required=False) for c in item.queue.schema.criteria]
    clean = values_validate(criteria, values)
    if not clean:
        raise Unprocessable("Give a final value for at least one criterion.", code="invalid_rating")
    existing = Adjudication.objects.select_for_update().filter(item=item).first()
    before = dict(existing.values) if existing else None
    if existing is None:
        adjudication = Adjudication.objects.create(item=item, values=clean, note=note, decided_by=actor)
    else:
        existing.values, existing.note, existing.decided_by = clean, note, actor
        existing.save(update_fields=["values", "note", "decided_by", "updated_at"])
        adjudication = existing
    audit_event_record(
        actor=actor,
        action="feedback.item_adjudicated",
        target=item.queue,
        changes={"item": item.pk, "event": item.event_id, "before": before, "after": clean, "note": note},
    )
    return adjudication


# End-user feedback


@dataclass(frozen=True)
class FeedbackResult:
    feedback: EndUserFeedback
    created: bool
    changed: bool


def end_user_feedback_record(
    *,
    actor: User,
    team: Team,
    request_id: str,
    end_user: str = "",
    thumbs: bool | None = None,
    score: int | None = None,
    comment: str = "",
) -> FeedbackResult:
    """Idempotent per (team, request id, end user): the first call creates, a repeat with the same values
    changes nothing, a repeat with other values replaces them (the end user changed their mind: the latest
    answer counts). The log event need not exist yet (feedback may arrive before its log batch is scanned)."""
    _require(
        actor, team, FEEDBACK_SENDERS, "Only engineers and administrators (their applications) send feedback."
    )
    if thumbs is None and score is None and not comment:
        raise Unprocessable("Send at least one of thumbs, score or comment.", code="empty_feedback")
    if score is not None and not 1 <= score <= 5:
        raise Unprocessable(f"score: {score} is off the scale; allowed: 1 to 5.", code="invalid_score")
    if len(comment) > MAX_COMMENT:
        raise Unprocessable(f"comment: at most {MAX_COMMENT} characters.", code="comment_too_long")
    values = {"thumbs": thumbs, "score": score, "comment": comment}
    for _attempt in range(3):
        try:
            with transaction.atomic():
                existing = (
                    EndUserFeedback.objects.select_for_update()
                    .filter(team=team, request_id=request_id, end_user=end_user)
                    .first()
                )
                if existing is None:
                    feedback = EndUserFeedback.objects.create(
                        team=team, request_id=request_id, end_user=end_user, **values
                    )
                    return FeedbackResult(feedback, created=True, changed=True)
                changed = any(getattr(existing, k) != v for k, v in values.items())
                if changed:
                    for k, v in values.items():
                        setattr(existing, k, v)
                    existing.save(update_fields=[*values, "updated_at"])
                return FeedbackResult(existing, created=False, changed=changed)
        except IntegrityError:
            continue  # the same feedback created at the same moment: read it back
    raise Conflict("The same feedback is being sent concurrently: try again.", code="busy")


# Datasets


def dataset_rows(queue: AnnotationQueue, kind: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows of an export and their lineage, from the items' final values (see final_values)."""
    from apps.feedback.selectors import final_values

    criteria = queue.schema.criteria
    text = next((c["name"] for c in criteria if c["kind"] == CriterionKind.TEXT), None)
    preference = next((c["name"] for c in criteria if c["kind"] == CriterionKind.PREFERENCE), None)
    items = (
        QueueItem.objects.filter(queue=queue)
        .select_related("event", "event_b", "adjudication")
        .prefetch_related("annotations")
        .order_by("position")
    )
    rows: list[dict[str, Any]] = []
    lineage: list[dict[str, Any]] = []
    for item in items:
        if item.event.state != EventState.STORED or (
            item.event_b and item.event_b.state != EventState.STORED
        ):
            continue
        final = final_values(criteria, item)
        if not final:
            continue
        messages = _messages(item.event.input)
        corrected = final.get(text) if text else None
        row: dict[str, Any] | None = None
        if kind == DatasetKind.SFT:
            if corrected:
                answer = corrected
            elif item.event_b is None and _accepted(criteria, final):
                answer = item.event.output
            else:
                continue
            row = {"messages": [*messages, {"role": "assistant", "content": answer}]}
        else:
            if preference and item.event_b is not None and final.get(preference) in ("A", "B"):
                a, b = item.event.output, item.event_b.output
                chosen, rejected = (a, b) if final[preference] == "A" else (b, a)
            elif corrected and corrected.strip() != item.event.output.strip():
                chosen, rejected = corrected, item.event.output
            else:
                continue
            row = {"prompt": messages, "chosen": chosen, "rejected": rejected}
        rows.append(row)
        lineage.append(
            {
                "row": len(rows) - 1,
                "item": item.pk,
                "events": [item.event_id] + ([item.event_b_id] if item.event_b_id else []),
                "request_ids": [item.event.request_id] + ([item.event_b.request_id] if item.event_b else []),
                "adjudicated": hasattr(item, "adjudication"),
            }
        )
    return rows, lineage


def _messages(value: Any) -> list[dict[str, str]]:
    if isinstance(value, list):
        return [
            {"role": str(m.get("role", "user")), "content": str(m.get("content", ""))}
            for m in value
            if isinstance(m, dict)
        ]
    return [{"role": "user", "content": str(value or "")}]


def _accepted(criteria: list[dict[str, Any]], final: dict[str, Any]) -> bool:
    """Whether the final ratings accept the original answer as a tuning example: every thumbs up and every
    scale in its upper half (at least one such criterion rated)."""
    judged = False
    for c in criteria:
        value = final.get(c["name"])
        if value is None:
            continue
        if c["kind"] == CriterionKind.THUMBS:
            judged = True
            if value is not True:
                return False
        elif c["kind"] == CriterionKind.SCALE:
            judged = True
            if value < (c["min"] + c["max"]) / 2:
                return False
    return judged


@transaction.atomic
def dataset_export(*, actor: User, queue: AnnotationQueue, kind: str, name: str = "") -> Dataset:
    """A new version of the named dataset (default: the queue's name) from the queue's final values."""
    queue = AnnotationQueue.objects.select_related("team", "schema").get(pk=queue.pk)
    _require(
        actor, queue.team, DATASET_EXPORTERS, "Only governance, engineers and administrators export datasets."
    )
    if kind not in DatasetKind.values:
        raise Unprocessable(f"kind must be one of {', '.join(DatasetKind.values)}.", code="invalid_kind")
    name = name or f"{queue.name}-{kind}"
    rows, lineage = dataset_rows(queue, kind)
    if not rows:
        raise Unprocessable(
            "Nothing to export yet: no item has final values (adjudicated, or all annotators agreeing) "
            "that make a row of this kind.",
            code="empty_dataset",
        )
    content = "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)
    last = Dataset.objects.select_for_update().filter(team=queue.team, name=name).order_by("-version").first()
    dataset = Dataset.objects.create(
        team=queue.team,
        queue=queue,
        name=name,
        version=(last.version + 1) if last else 1,
        kind=kind,
        content=content,
        content_hash=hashlib.sha256(content.encode()).hexdigest(),
        row_count=len(rows),
        lineage=lineage,
        created_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="feedback.dataset_exported",
        target=dataset,
        changes={
            "name": name,
            "version": dataset.version,
            "kind": kind,
            "queue": queue.pk,
            "rows": len(rows),
            "content_hash": dataset.content_hash,
            "uri": dataset.uri,
        },
    )
    return dataset
