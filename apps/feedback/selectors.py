"""Reads of human feedback. Managers (governance, engineers, administrators) see their teams' schemas,
queues, results and datasets; annotators see the queues they annotate and only the item they hold —
never another annotator's ratings (blind), never a log event that is not stored redacted."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from django.db.models import Avg, Count, Exists, OuterRef, Q, QuerySet

from apps.accounts.models import User
from apps.accounts.selectors import user_team_ids
from apps.costs.selectors import COST_READERS, CostFilters
from apps.feedback.agreement import cohen_kappa, krippendorff_alpha, mean_interval, wilson_interval
from apps.feedback.models import (
    POSITIVE_FEEDBACK,
    Annotation,
    AnnotationQueue,
    AnnotationSlot,
    CriterionKind,
    Dataset,
    EndUserFeedback,
    QueueItem,
    RatingSchema,
    SlotState,
)
from apps.feedback.schemas import NOMINAL_KINDS, numeric
from apps.feedback.services import ANNOTATORS, DATASET_EXPORTERS, FEEDBACK_MANAGERS
from apps.logs.models import EventState, LogEvent


def feedback_can_manage(*, user: User) -> bool:
    return bool(user_team_ids(user, FEEDBACK_MANAGERS))


def feedback_can_annotate(*, user: User) -> bool:
    return bool(user_team_ids(user, ANNOTATORS))


def rating_schema_list(*, user: User) -> QuerySet[RatingSchema]:
    return RatingSchema.objects.filter(team_id__in=user_team_ids(user, FEEDBACK_MANAGERS)).select_related(
        "team"
    )


def rating_schema_get(*, user: User, schema_id: int) -> RatingSchema | None:
    return rating_schema_list(user=user).filter(pk=schema_id).first()


def queue_list(*, user: User) -> QuerySet[AnnotationQueue]:
    """The queues of the teams the user manages, and the queues they annotate."""
    managed = user_team_ids(user, FEEDBACK_MANAGERS)
    annotated = user_team_ids(user, ANNOTATORS)
    assigned = AnnotationQueue.assignees.through.objects.filter(annotationqueue_id=OuterRef("pk"))
    mine = AnnotationQueue.assignees.through.objects.filter(
        annotationqueue_id=OuterRef("pk"), user_id=user.pk
    )
    return (
        AnnotationQueue.objects.filter(
            Q(team_id__in=managed) | Q(team_id__in=annotated) & (Q(Exists(mine)) | ~Q(Exists(assigned)))
        )
        .select_related("team", "schema")
        .order_by("-created_at", "-id")
    )


def queue_get_managed(*, user: User, queue_id: int) -> AnnotationQueue | None:
    return (
        AnnotationQueue.objects.filter(pk=queue_id, team_id__in=user_team_ids(user, FEEDBACK_MANAGERS))
        .select_related("team", "schema")
        .first()
    )


def queue_get_for_annotation(*, user: User, queue_id: int) -> AnnotationQueue | None:
    """A queue the user annotates: an annotator of its team, among its assignees if it names any (two
    simple queries: this is on every `next item`)."""
    queue = (
        AnnotationQueue.objects.filter(pk=queue_id, team_id__in=user_team_ids(user, ANNOTATORS))
        .select_related("team", "schema")
        .order_by()
        .first()
    )
    if queue is None:
        return None
    assignees = set(
        AnnotationQueue.assignees.through.objects.filter(annotationqueue_id=queue.pk).values_list(
            "user_id", flat=True
        )
    )
    queue._assignee_ids = assignees  # type: ignore[attr-defined]
    return queue if not assignees or user.pk in assignees else None


REMAINING_CAP = 1000


def annotator_progress(*, user: User, queue: AnnotationQueue) -> dict[str, Any]:
    """What one annotator did in a queue, and how many ratings are left in it (counted up to 1,000, so that
    the page stays fast on a queue of a million items: "1000+")."""
    done = AnnotationSlot.objects.filter(queue=queue, annotator=user, state=SlotState.DONE).count()
    remaining = AnnotationSlot.objects.filter(queue=queue, state__in=[SlotState.OPEN, SlotState.LEASED])[
        : REMAINING_CAP + 1
    ].count()
    return {
        "done": done,
        "remaining": f"{REMAINING_CAP}+" if remaining > REMAINING_CAP else str(remaining),
        "total": queue.item_count * queue.overlap,
    }


def slot_for_annotation(*, user: User, slot: AnnotationSlot) -> dict[str, Any]:
    """The item an annotator holds: its stored, redacted text only (never the staged payload)."""
    item = (
        QueueItem.objects.select_related("event", "event_b")
        .defer(
            "event__staged_payload", "event__search_text", "event_b__staged_payload", "event_b__search_text"
        )
        .get(pk=slot.item_id)
    )

    def stored(event: LogEvent | None) -> LogEvent | None:
        return event if event is not None and event.state == EventState.STORED else None

    return {"item": item, "event": stored(item.event), "event_b": stored(item.event_b)}


def queue_progress(*, queue: AnnotationQueue) -> dict[str, Any]:
    """Slots by state and, per annotator, what they rated, skipped, hold, and their time per item."""
    states = dict(
        AnnotationSlot.objects.filter(queue=queue).values_list("state").annotate(n=Count("id")).order_by()
    )
    per = (
        Annotation.objects.filter(queue=queue)
        .values("annotator__username")
        .annotate(done=Count("id"), seconds=Avg("seconds"))
        .order_by("annotator__username")
    )
    skipped = dict(
        AnnotationSlot.objects.filter(queue=queue, state=SlotState.SKIPPED)
        .values_list("annotator__username")
        .annotate(n=Count("id"))
        .order_by()
    )
    total = queue.item_count * queue.overlap
    done = states.get(SlotState.DONE, 0)
    complete_items = (
        QueueItem.objects.filter(queue=queue)
        .annotate(n=Count("annotations"))
        .filter(n__gte=queue.overlap)
        .count()
    )
    return {
        "total": total,
        "done": done,
        "leased": states.get(SlotState.LEASED, 0),
        "open": states.get(SlotState.OPEN, 0),
        "share": done / total if total else 0.0,
        "complete_items": complete_items,
        "annotators": [
            {
                "username": row["annotator__username"],
                "done": row["done"],
                "skipped": skipped.get(row["annotator__username"], 0),
                "seconds": row["seconds"],
            }
            for row in per
        ],
    }


# Results


def final_values(criteria: list[dict[str, Any]], item: QueueItem) -> dict[str, Any]:
    """An item's final value per criterion: the adjudicated one, else the annotators' value when every one
    of at least two annotators gave the same (free text is final only when adjudicated, or when a single
    annotator rated an item of a queue without overlap)."""
    adjudicated = dict(item.adjudication.values) if hasattr(item, "adjudication") else {}
    annotations = list(item.annotations.all())
    final: dict[str, Any] = {}
    for c in criteria:
        name = c["name"]
        if name in adjudicated:
            final[name] = adjudicated[name]
            continue
        given = [a.values.get(name) for a in annotations if a.values.get(name) not in (None, "")]
        if not given:
            continue
        if (len(annotations) == 1 and item.queue.overlap == 1) or (
            c["kind"] != CriterionKind.TEXT and len(given) >= 2 and len(set(map(repr, given))) == 1
        ):
            final[name] = given[0]
    return final


@dataclass
class _Rated:
    item: QueueItem
    annotations: list[Annotation]


def _rated_items(queue: AnnotationQueue) -> list[_Rated]:
    items = (
        QueueItem.objects.filter(queue=queue, annotations__isnull=False)
        .distinct()
        .select_related("event", "event_b", "adjudication", "queue")
        .prefetch_related("annotations__annotator")
        .order_by("position")
    )
    return [_Rated(item, list(item.annotations.all())) for item in items]


def _consensus(criterion: dict[str, Any], rated: _Rated) -> Any:
    adjudicated = rated.item.adjudication.values if hasattr(rated.item, "adjudication") else {}
    if criterion["name"] in adjudicated:
        return adjudicated[criterion["name"]]
    given = [a.values.get(criterion["name"]) for a in rated.annotations]
    given = [g for g in given if g is not None]
    if not given:
        return None
    if criterion["kind"] == CriterionKind.SCALE:
        ordered = sorted(given)
        return ordered[len(ordered) // 2] if len(ordered) % 2 else None  # the median when it is a value
    value, count = Counter(map(repr, given)).most_common(1)[0]
    return next(g for g in given if repr(g) == value) if count * 2 > len(given) else None


def queue_results(*, queue: AnnotationQueue) -> dict[str, Any]:
    """Scores per (prompt, version, model) and criterion with 95 % intervals (Wilson for thumbs, Student's t
    for scales, Wilson for the share of B preferred); agreement per criterion (Krippendorff's alpha at the
    criterion's levels, Cohen's kappa per pair of annotators); each annotator's agreement with the
    consensus; the items where annotators disagree."""
    criteria = queue.schema.criteria
    rated = _rated_items(queue)
    scores = _scores(criteria, rated)
    agreement = []
    for c in criteria:
        if c["kind"] == CriterionKind.TEXT:
            continue
        units = [[a.values.get(c["name"]) for a in r.annotations] for r in rated]
        levels = ["nominal"] if c["kind"] in NOMINAL_KINDS else ["ordinal", "interval"]
        alphas = {level: krippendorff_alpha(units, level) for level in levels}
        agreement.append(
            {
                "criterion": c["name"],
                "kind": c["kind"],
                "alpha": alphas,
                "units": sum(1 for u in units if sum(v is not None for v in u) >= 2),
                "kappa": _kappas(c, rated),
            }
        )
    return {
        "scores": scores,
        "agreement": agreement,
        "annotators": _annotator_agreement(criteria, rated),
        "disagreements": _disagreements(criteria, rated),
    }


def _group_key(event: LogEvent) -> tuple[str, int | None, str]:
    return (event.prompt, event.prompt_version, event.model)


def _scores(criteria: list[dict[str, Any]], rated: list[_Rated]) -> list[dict[str, Any]]:
    groups: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rated:
        for c in criteria:
            for a in r.annotations:
                value = a.values.get(c["name"])
                if (
                    c["kind"] == CriterionKind.PREFERENCE
                    and r.item.event_b is not None
                    and value in ("A", "B")
                ):
                    key = (*_group_key(r.item.event), *_group_key(r.item.event_b))
                    groups[key][c["name"]].append(1.0 if value == "B" else 0.0)
                    continue
                number = numeric(c, value)
                if number is not None:
                    groups[(*_group_key(r.item.event), None, None, None)][c["name"]].append(number)
    by_name = {c["name"]: c for c in criteria}
    out = []
    for key, per_criterion in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        for name, values in per_criterion.items():
            c = by_name[name]
            n = len(values)
            mean = sum(values) / n
            if c["kind"] in (CriterionKind.THUMBS, CriterionKind.PREFERENCE):
                interval = wilson_interval(round(sum(values)), n)
                method = "wilson"
            else:
                interval = mean_interval(values)
                method = "t"
            out.append(
                {
                    "prompt": key[0],
                    "prompt_version": key[1],
                    "model": key[2],
                    "versus": {"prompt": key[3], "prompt_version": key[4], "model": key[5]}
                    if key[3] is not None
                    else None,
                    "criterion": name,
                    "kind": c["kind"],
                    "n": n,
                    "mean": mean,
                    "low": interval[0] if interval else None,
                    "high": interval[1] if interval else None,
                    "method": method,
                }
            )
    return out


def _kappas(criterion: dict[str, Any], rated: list[_Rated]) -> list[dict[str, Any]]:
    """Cohen's kappa for every pair of annotators who rated at least two items in common."""
    by_annotator: dict[str, dict[int, Any]] = defaultdict(dict)
    for r in rated:
        for a in r.annotations:
            value = a.values.get(criterion["name"])
            if value is not None:
                by_annotator[a.annotator.username][r.item.pk] = value
    out = []
    for first, second in combinations(sorted(by_annotator), 2):
        common = sorted(set(by_annotator[first]) & set(by_annotator[second]))
        if len(common) < 2:
            continue
        pairs = [(repr(by_annotator[first][i]), repr(by_annotator[second][i])) for i in common]
        out.append({"annotators": [first, second], "items": len(common), "kappa": cohen_kappa(pairs)})
    return out


def _annotator_agreement(criteria: list[dict[str, Any]], rated: list[_Rated]) -> list[dict[str, Any]]:
    """Per annotator: the share of their values equal to the item's consensus (the adjudicated value, else
    the majority — or the median of a scale — of everyone's values), over items with at least two ratings."""
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in rated:
        if len(r.annotations) < 2 and not hasattr(r.item, "adjudication"):
            continue
        for c in criteria:
            if c["kind"] == CriterionKind.TEXT:
                continue
            consensus = _consensus(c, r)
            if consensus is None:
                continue
            for a in r.annotations:
                value = a.values.get(c["name"])
                if value is None:
                    continue
                tally[a.annotator.username][1] += 1
                tally[a.annotator.username][0] += int(value == consensus)
    return [
        {
            "username": name,
            "agreed": agreed,
            "compared": compared,
            "share": agreed / compared if compared else None,
        }
        for name, (agreed, compared) in sorted(tally.items())
    ]


def _disagreements(criteria: list[dict[str, Any]], rated: list[_Rated]) -> list[dict[str, Any]]:
    out = []
    for r in rated:
        if len(r.annotations) < 2:
            continue
        differing = [
            c["name"]
            for c in criteria
            if c["kind"] != CriterionKind.TEXT
            and len(
                {repr(a.values.get(c["name"])) for a in r.annotations if a.values.get(c["name"]) is not None}
            )
            > 1
        ]
        if differing:
            out.append(
                {"item": r.item, "criteria": differing, "adjudicated": hasattr(r.item, "adjudication")}
            )
    return out


def item_get_for_adjudication(*, user: User, item_id: int) -> QueueItem | None:
    """An item with its annotations, for the managers of its team (the adjudication view)."""
    return (
        QueueItem.objects.filter(pk=item_id, queue__team_id__in=user_team_ids(user, FEEDBACK_MANAGERS))
        .select_related("queue", "queue__team", "queue__schema", "event", "event_b")
        .prefetch_related("annotations__annotator")
        .first()
    )


# Datasets


def dataset_list(*, user: User) -> QuerySet[Dataset]:
    return (
        Dataset.objects.filter(team_id__in=user_team_ids(user, DATASET_EXPORTERS))
        .select_related("team", "queue", "created_by")
        .defer("content", "lineage")
        .order_by("-created_at", "-id")
    )


def dataset_get(*, user: User, dataset_id: int) -> Dataset | None:
    return (
        Dataset.objects.filter(pk=dataset_id, team_id__in=user_team_ids(user, DATASET_EXPORTERS))
        .select_related("team", "queue", "created_by")
        .first()
    )


# End-user feedback in the KPI dashboards


def _feedback_events(user: User, filters: CostFilters) -> QuerySet[EndUserFeedback]:
    """End-user feedback on the stored calls that the dashboard's filters select (team, app, model, prompt,
    dates of the call)."""
    allowed = set(user_team_ids(user, COST_READERS))
    teams = [t for t in filters.team_ids if t in allowed] if filters.team_ids else list(allowed)
    events = LogEvent.objects.filter(
        team_id=OuterRef("team_id"),
        request_id=OuterRef("request_id"),
        state=EventState.STORED,
        started_at__gte=filters.since,
        started_at__lt=filters.until,
    )
    if filters.app:
        events = events.filter(app=filters.app)
    if filters.model:
        events = events.filter(model=filters.model)
    if filters.prompt:
        events = events.filter(prompt=filters.prompt)
    return EndUserFeedback.objects.filter(team_id__in=teams).filter(Exists(events))


def _kpi(row: dict[str, Any]) -> dict[str, Any]:
    rated = row["rated"] or 0
    positive = row["positive"] or 0
    return {
        "responses": row["responses"] or 0,
        "rated": rated,
        "positive": positive,
        "positive_share": positive / rated if rated else None,
        "positive_interval": wilson_interval(positive, rated),
        "mean_score": row["mean_score"],
        "scored": row["scored"] or 0,
    }


_KPI_AGGREGATES = {
    "responses": Count("id"),
    "rated": Count("id", filter=Q(thumbs__isnull=False) | Q(score__isnull=False)),
    "positive": Count("id", filter=POSITIVE_FEEDBACK),
    "mean_score": Avg("score"),
    "scored": Count("id", filter=Q(score__isnull=False)),
}


def feedback_kpis(*, user: User, filters: CostFilters) -> dict[str, Any]:
    """End-user feedback for the dashboard: the share of positive answers (thumbs up or a score of 4–5,
    among those with a thumbs or a score) and the mean score (1–5), in total and per team slug."""
    qs = _feedback_events(user, filters)
    totals = _kpi(qs.aggregate(**_KPI_AGGREGATES))
    per_team = {
        row["team__slug"]: _kpi(dict(row))
        for row in qs.values("team__slug").annotate(**_KPI_AGGREGATES).order_by("team__slug")
    }
    return {"totals": totals, "teams": per_team}
