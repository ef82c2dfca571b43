"""Assignment under real concurrency: threads with their own database connections, on a transactional
database (SQLite here, PostgreSQL when DATABASE_URL names it)."""

import threading
from collections import Counter

import pytest
from django.db import connection

from apps.feedback.models import Annotation, AnnotationSlot, SlotState
from apps.feedback.services import (
    annotation_next,
    annotation_queue_create,
    annotation_submit,
    rating_schema_create,
)
from tests.factories import UserFactory, make_world, member
from tests.feedback.conftest import RUBRIC, VALID, event_spec, store_events


def _run(workers):
    barrier = threading.Barrier(len(workers))
    errors = []

    def wrap(fn):
        def run():
            try:
                barrier.wait(timeout=30)
                fn()
            except Exception as exc:  # surfaced by the assertion below
                errors.append(exc)
            finally:
                connection.close()

        return run

    threads = [threading.Thread(target=wrap(fn)) for fn in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_annotators_never_share_a_slot_and_k_holds():
    world = make_world()
    annotators = [world.ann1, world.ann2] + [
        member(UserFactory(username=f"ann{n}"), world.support, "annotator") for n in range(3, 7)
    ]
    store_events(world.eng, world.support, [event_spec(f"r-{i}") for i in range(12)])
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)
    queue = annotation_queue_create(
        actor=world.eng, team=world.support, name="q", schema=schema, size=12, overlap=3
    )
    leased: dict[str, list[int]] = {a.username: [] for a in annotators}

    def annotate(user):
        def run():
            while (slot := annotation_next(actor=user, queue=queue)) is not None:
                leased[user.username].append(slot.pk)
                annotation_submit(actor=user, slot_id=slot.pk, values=VALID)

        return run

    _run([annotate(a) for a in annotators])

    all_slots = [pk for slots in leased.values() for pk in slots]
    assert len(all_slots) == len(set(all_slots)) == 36  # no slot handed out twice; all 12 × 3 rated
    per_item = Counter(Annotation.objects.values_list("item_id", flat=True))
    assert set(per_item.values()) == {3}  # k respected on every item
    pairs = list(Annotation.objects.values_list("item_id", "annotator_id"))
    assert len(pairs) == len(set(pairs))  # nobody rated an item twice
    assert not AnnotationSlot.objects.exclude(state=SlotState.DONE).exists()


@pytest.mark.django_db(transaction=True)
def test_two_annotators_asking_at_once_get_different_slots():
    world = make_world()
    store_events(world.eng, world.support, [event_spec("r-1")])
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)
    queue = annotation_queue_create(
        actor=world.eng, team=world.support, name="q", schema=schema, size=1, overlap=1
    )
    got = {}

    def ask(user):
        def run():
            got[user.username] = annotation_next(actor=user, queue=queue)

        return run

    for _ in range(5):
        got.clear()
        _run([ask(world.ann1), ask(world.ann2)])
        winners = [name for name, slot in got.items() if slot is not None]
        assert len(winners) == 1  # one slot, one annotator
        AnnotationSlot.objects.update(state=SlotState.OPEN, annotator=None, leased_at=None, leased_until=None)
