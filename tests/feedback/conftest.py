"""Fixtures for human feedback: stored (scanned, redacted) log events of the support team, schemas and
queues built through the services."""

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from apps.feedback.services import annotation_queue_create, rating_schema_create
from apps.logs.models import LogEvent
from apps.logs.schemas import LogEventIn
from apps.logs.services import log_events_ingest, log_events_scan

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)

RUBRIC = [
    {"name": "ok", "kind": "thumbs", "guidance": "Would you send this answer?"},
    {"name": "helpfulness", "kind": "scale", "min": 1, "max": 5, "guidance": "5: solves the problem"},
    {"name": "topic", "kind": "labels", "labels": ["billing", "delivery", "other"]},
    {"name": "corrected", "kind": "text"},
]
PAIRWISE = [{"name": "better", "kind": "preference", "guidance": "Which answer would you send?"}]


def _number(rid: str) -> int:
    tail = rid.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def event_spec(rid: str, **overrides: Any) -> dict[str, Any]:
    base = {
        "request_id": rid,
        "started_at": (START + timedelta(minutes=_number(rid))).isoformat(),
        "app": "support-bot",
        "prompt": "support-reply",
        "prompt_version": 1,
        "model": "gemini-2.5-flash",
        "input": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": f"Question {rid}: write to ana.garcia@example.com"},
        ],
        "output": f"Answer {rid}: we wrote to ana.garcia@example.com",
        "status": "ok",
        "end_user": "u-1",
    }
    base.update(overrides)
    return base


def store_events(actor, team, specs: list[dict[str, Any]]) -> list[LogEvent]:
    """Ingest and scan events like the pipeline does: they end up stored and redacted."""
    events = [(i, msgspec.convert(spec, LogEventIn)) for i, spec in enumerate(specs)]
    log_events_ingest(actor=actor, team=team, events=events)
    ids = list(
        LogEvent.objects.filter(team=team, request_id__in=[s["request_id"] for s in specs]).values_list(
            "pk", flat=True
        )
    )
    log_events_scan(event_ids=ids)
    return list(LogEvent.objects.filter(pk__in=ids).order_by("started_at", "pk"))


@pytest.fixture
def events(world):
    return store_events(world.eng, world.support, [event_spec(f"r-{i}") for i in range(10)])


@pytest.fixture
def rubric(world):
    return rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)


@pytest.fixture
def queue(world, events, rubric):
    return annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="weekly",
        schema=rubric,
        size=5,
        overlap=2,
        assignees=[world.ann1, world.ann2],
        instructions="Rate the answers.",
    )


VALID = {"ok": True, "helpfulness": 4, "topic": "delivery"}
