"""Schemas, queues, leasing, submitting, skipping, adjudicating: the services' rules."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.feedback.models import Annotation, AnnotationSlot, QueueItem, SlotState
from apps.feedback.services import (
    adjudication_set,
    annotation_next,
    annotation_queue_create,
    annotation_skip,
    annotation_submit,
    rating_schema_create,
)
from tests.feedback.conftest import PAIRWISE, RUBRIC, VALID, event_spec, store_events

pytestmark = pytest.mark.django_db


# Schemas


def test_a_schema_is_validated_and_audited(world):
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)
    assert [c["name"] for c in schema.criteria] == ["ok", "helpfulness", "topic", "corrected"]
    assert schema.criteria[3]["required"] is False and schema.criteria[0]["required"] is True
    assert AuditEvent.objects.filter(action="feedback.schema_created", target_id=str(schema.pk)).exists()


@pytest.mark.parametrize(
    "criteria, message",
    [
        ([], "at least one criterion"),
        ([{"name": "x", "kind": "stars"}], "kind must be one of"),
        ([{"name": "x", "kind": "scale", "min": 5, "max": 1}], "min < max"),
        ([{"name": "x", "kind": "labels", "labels": ["only"]}], "labels must be"),
        ([{"name": "x", "kind": "thumbs"}, {"name": "x", "kind": "thumbs"}], "appears twice"),
        ([{"name": "Bad Name", "kind": "thumbs"}], "lowercase"),
        ([{"name": "x", "kind": "thumbs", "colour": "red"}], "unknown keys colour"),
    ],
)
def test_bad_schemas_are_refused_naming_the_problem(world, criteria, message):
    with pytest.raises(Unprocessable, match=message):
        rating_schema_create(actor=world.gov, team=world.support, name="s", criteria=criteria)


def test_only_managers_define_schemas(world):
    for user in (world.ann1, world.owner, world.fin_gov):
        with pytest.raises(PermissionDenied):
            rating_schema_create(actor=user, team=world.support, name="s", criteria=RUBRIC)


# Queues


def test_sampling_is_deterministic_and_respects_rate_and_size(world, events, rubric):
    first = annotation_queue_create(
        actor=world.eng, team=world.support, name="a", schema=rubric, size=100, sampling_rate=0.5
    )
    second = annotation_queue_create(
        actor=world.eng, team=world.support, name="b", schema=rubric, size=100, sampling_rate=0.5
    )
    chosen = list(
        QueueItem.objects.filter(queue=first).order_by("position").values_list("event_id", flat=True)
    )
    assert chosen == list(
        QueueItem.objects.filter(queue=second).order_by("position").values_list("event_id", flat=True)
    )
    assert 0 < len(chosen) < len(events)  # about half of ten
    small = annotation_queue_create(actor=world.eng, team=world.support, name="c", schema=rubric, size=3)
    assert small.item_count == 3
    assert AnnotationSlot.objects.filter(queue=small).count() == 3


def test_filters_choose_the_items(world, events, rubric):
    store_events(world.eng, world.support, [event_spec("v2-1", prompt_version=2, model="gemini-2.5-pro")])
    queue = annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="v2",
        schema=rubric,
        size=10,
        filters={"prompt_version": 2},
    )
    assert list(queue.items.values_list("event__request_id", flat=True)) == ["v2-1"]
    with pytest.raises(Unprocessable, match="empty"):
        annotation_queue_create(
            actor=world.eng,
            team=world.support,
            name="none",
            schema=rubric,
            size=10,
            filters={"model": "nope"},
        )


def test_pairwise_queue_pairs_answers_to_the_same_input(world, events):
    schema = rating_schema_create(actor=world.gov, team=world.support, name="ab", criteria=PAIRWISE)
    same_input = event_spec("r-1")["input"]
    store_events(world.eng, world.support, [event_spec("v2-1", prompt_version=2, input=same_input)])
    queue = annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="v1-v2",
        schema=schema,
        kind="pairwise",
        size=10,
        filters={"prompt_version": 1, "prompt_version_b": 2},
    )
    item = queue.items.get()
    assert (item.event.request_id, item.event_b.request_id) == ("r-1", "v2-1")


def test_assignees_must_be_annotators_of_the_team(world, events, rubric):
    with pytest.raises(Unprocessable, match="Not annotators"):
        annotation_queue_create(
            actor=world.eng, team=world.support, name="q", schema=rubric, size=2, assignees=[world.eng2]
        )


# Leasing and rating


def test_next_submit_and_k(world, queue):
    seen = {}
    for annotator in (world.ann1, world.ann2):
        items = []
        while (slot := annotation_next(actor=annotator, queue=queue)) is not None:
            annotation_submit(actor=annotator, slot_id=slot.pk, values=VALID)
            items.append(slot.item_id)
        seen[annotator.username] = items
    # each annotator rated every item once; every item got exactly k=2 ratings
    assert sorted(seen["ann1"]) == sorted(seen["ann2"]) == sorted(queue.items.values_list("pk", flat=True))
    assert Annotation.objects.filter(queue=queue).count() == 10
    assert annotation_next(actor=world.ann1, queue=queue) is None


def test_next_returns_the_slot_already_held(world, queue):
    first = annotation_next(actor=world.ann1, queue=queue)
    again = annotation_next(actor=world.ann1, queue=queue)
    assert again.pk == first.pk


def test_an_expired_lease_returns_to_the_pool(world, queue):
    queue.overlap = 1
    slot = annotation_next(actor=world.ann1, queue=queue)
    later = timezone.now() + timedelta(minutes=queue.lease_minutes + 1)
    other = annotation_next(actor=world.ann2, queue=queue, now=later)
    assert other.pk == slot.pk  # the abandoned slot, before any fresh one
    with pytest.raises(Conflict, match="expired"):
        annotation_submit(actor=world.ann1, slot_id=slot.pk, values=VALID)
    annotation_submit(actor=world.ann2, slot_id=slot.pk, values=VALID)


def test_a_skipped_item_is_not_offered_again_and_its_slot_returns(world, queue):
    slot = annotation_next(actor=world.ann1, queue=queue)
    annotation_skip(actor=world.ann1, slot_id=slot.pk)
    assert AnnotationSlot.objects.filter(item_id=slot.item_id, state=SlotState.OPEN).count() == 2
    offered = set()
    while (s := annotation_next(actor=world.ann1, queue=queue)) is not None:
        offered.add(s.item_id)
        annotation_submit(actor=world.ann1, slot_id=s.pk, values=VALID)
    assert slot.item_id not in offered and len(offered) == 4


def test_a_score_off_the_scale_is_422_naming_the_criterion_and_range(world, queue):
    slot = annotation_next(actor=world.ann1, queue=queue)
    with pytest.raises(Unprocessable) as caught:
        annotation_submit(actor=world.ann1, slot_id=slot.pk, values={**VALID, "helpfulness": 7})
    assert caught.value.details == {"criterion": "helpfulness", "min": 1, "max": 5}
    assert "helpfulness" in caught.value.message and "1 to 5" in caught.value.message
    with pytest.raises(Unprocessable, match="topic"):
        annotation_submit(actor=world.ann1, slot_id=slot.pk, values={**VALID, "topic": "weather"})
    with pytest.raises(Unprocessable, match="required"):
        annotation_submit(actor=world.ann1, slot_id=slot.pk, values={"ok": True})
    assert not Annotation.objects.exists()


def test_only_assigned_annotators_get_items(world, queue):
    for user in (world.eng, world.gov, world.owner, world.fin_eng):
        with pytest.raises(PermissionDenied):
            annotation_next(actor=user, queue=queue)
    slot = annotation_next(actor=world.ann1, queue=queue)
    with pytest.raises((NotFound, Conflict)):
        annotation_submit(actor=world.ann2, slot_id=slot.pk, values=VALID)


def test_time_per_item_is_recorded(world, queue):
    slot = annotation_next(actor=world.ann1, queue=queue)
    annotation = annotation_submit(
        actor=world.ann1, slot_id=slot.pk, values=VALID, now=slot.leased_at + timedelta(seconds=42)
    )
    assert annotation.seconds == pytest.approx(42)


def test_adjudication_is_governance_only_and_audited(world, queue):
    item = queue.items.first()
    for user in (world.eng, world.ann1, world.admin):
        with pytest.raises(PermissionDenied):
            adjudication_set(actor=user, item=item, values={"ok": False})
    adjudication_set(actor=world.gov, item=item, values={"ok": False, "corrected": "Better."}, note="n")
    adjudication_set(actor=world.gov, item=item, values={"ok": True}, note="changed my mind")
    events = AuditEvent.objects.filter(action="feedback.item_adjudicated").order_by("sequence")
    assert [e.changes["after"] for e in events] == [{"ok": False, "corrected": "Better."}, {"ok": True}]
    assert events[1].changes["before"] == {"ok": False, "corrected": "Better."}
    with pytest.raises(Unprocessable, match="helpfulness"):
        adjudication_set(actor=world.gov, item=item, values={"helpfulness": 0})


def test_only_stored_events_become_items_and_negative_feedback_filters(world, events, rubric):
    import msgspec

    from apps.feedback.services import end_user_feedback_record
    from apps.logs.schemas import LogEventIn
    from apps.logs.services import log_events_ingest

    staged = msgspec.convert(event_spec("staged-1"), LogEventIn)
    log_events_ingest(actor=world.eng, team=world.support, events=[(0, staged)])  # never scanned
    everything = annotation_queue_create(
        actor=world.eng, team=world.support, name="all", schema=rubric, size=100
    )
    assert "staged-1" not in set(everything.items.values_list("event__request_id", flat=True))
    assert everything.item_count == 10
    end_user_feedback_record(actor=world.eng, team=world.support, request_id="r-3", thumbs=False)
    end_user_feedback_record(actor=world.eng, team=world.support, request_id="r-4", score=1)
    end_user_feedback_record(actor=world.eng, team=world.support, request_id="r-5", thumbs=True, score=5)
    end_user_feedback_record(actor=world.eng, team=world.support, request_id="staged-1", thumbs=False)
    negative = annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="unhappy",
        schema=rubric,
        size=100,
        filters={"negative_feedback": True},
    )
    assert set(negative.items.values_list("event__request_id", flat=True)) == {"r-3", "r-4"}


def test_preference_pairs_export_with_lineage(world, events):
    from apps.feedback.services import dataset_export

    schema = rating_schema_create(actor=world.gov, team=world.support, name="ab", criteria=PAIRWISE)
    for i in (1, 2):
        store_events(
            world.eng,
            world.support,
            [
                event_spec(
                    f"v2-{i}", prompt_version=2, input=event_spec(f"r-{i}")["input"], output=f"Better {i}"
                )
            ],
        )
    queue = annotation_queue_create(
        actor=world.eng,
        team=world.support,
        name="v1-v2",
        schema=schema,
        kind="pairwise",
        size=10,
        overlap=2,
        filters={"prompt_version": 1, "prompt_version_b": 2},
    )
    for user in (world.ann1, world.ann2):
        while (slot := annotation_next(actor=user, queue=queue)) is not None:
            item = QueueItem.objects.get(pk=slot.item_id)
            # both prefer B on r-1's pair; they disagree on r-2's
            choice = "B" if item.event.request_id == "r-1" or user == world.ann1 else "A"
            annotation_submit(actor=user, slot_id=slot.pk, values={"better": choice})
    dataset = dataset_export(actor=world.eng, queue=queue, kind="preference")
    rows = [__import__("json").loads(line) for line in dataset.content.splitlines()]
    assert len(rows) == 1  # the disagreement is not final until adjudicated
    assert rows[0]["chosen"] == "Better 1" and rows[0]["rejected"].startswith("Answer r-1")
    assert rows[0]["prompt"][-1]["role"] == "user" and "[EMAIL_ADDRESS]" in rows[0]["prompt"][-1]["content"]
    assert dataset.lineage[0]["request_ids"] == ["r-1", "v2-1"]
    disputed = queue.items.get(event__request_id="r-2")
    adjudication_set(actor=world.gov, item=disputed, values={"better": "A"})
    second = dataset_export(actor=world.eng, queue=queue, kind="preference")
    assert second.version == 2 and second.row_count == 2 and second.content_hash != dataset.content_hash
    assert {tuple(row["request_ids"]) for row in second.lineage} == {("r-1", "v2-1"), ("r-2", "v2-2")}


def test_a_closed_queue_hands_out_nothing(world, queue):
    from apps.feedback.services import annotation_queue_close

    with pytest.raises(PermissionDenied):
        annotation_queue_close(actor=world.ann1, queue=queue)
    annotation_queue_close(actor=world.gov, queue=queue)
    queue.refresh_from_db()
    assert annotation_next(actor=world.ann1, queue=queue) is None
    with pytest.raises(Conflict):
        annotation_queue_close(actor=world.gov, queue=queue)
