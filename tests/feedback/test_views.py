"""The feedback pages: the role matrix, annotating one item at a time (submit, skip, a value off the scale),
only redacted text, blind ratings, adjudication, export and download; no inline script or style."""

import re

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.feedback.models import Adjudication, Annotation, AnnotationQueue, Dataset, RatingSchema
from apps.feedback.services import adjudication_set, annotation_next, annotation_submit, dataset_export
from tests.feedback.conftest import RUBRIC, VALID

pytestmark = pytest.mark.django_db

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "ann2", "fin_eng"]


def client_for(world, username):
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


@pytest.fixture
def rated(world, queue):
    """ann1 and ann2 rated one item differently; governance adjudicated it; a dataset was exported."""
    for user, helpfulness in ((world.ann1, 5), (world.ann2, 1)):
        slot = annotation_next(actor=user, queue=queue)
        annotation_submit(actor=user, slot_id=slot.pk, values={**VALID, "helpfulness": helpfulness})
    item = Annotation.objects.first().item
    adjudication_set(actor=world.gov, item=item, values={"helpfulness": 3, "corrected": "Fixed."})
    dataset = dataset_export(actor=world.gov, queue=queue, kind="sft")
    return {"queue": queue, "item": item, "dataset": dataset}


def _pages(rated):
    queue, item, dataset = rated["queue"], rated["item"], rated["dataset"]
    managers = {"admin": 200, "gov": 200, "eng": 200}
    return {
        reverse("feedback:index"): {**managers, "owner": 403, "ann1": 200, "ann2": 200, "fin_eng": 200},
        reverse("feedback:queue_new"): {**managers, "owner": 403, "ann1": 403, "ann2": 403, "fin_eng": 200},
        reverse("feedback:schemas"): {**managers, "owner": 403, "ann1": 403, "ann2": 403, "fin_eng": 200},
        reverse("feedback:datasets"): {**managers, "owner": 403, "ann1": 403, "ann2": 403, "fin_eng": 200},
        reverse("feedback:queue", args=[queue.pk]): {
            **managers,
            "owner": 403,
            "ann1": 403,
            "ann2": 403,
            "fin_eng": 404,
        },
        reverse("feedback:item", args=[item.pk]): {
            **managers,
            "owner": 403,
            "ann1": 403,
            "ann2": 403,
            "fin_eng": 404,
        },
        reverse("feedback:dataset_download", args=[dataset.pk]): {
            **managers,
            "owner": 403,
            "ann1": 403,
            "ann2": 403,
            "fin_eng": 404,
        },
        reverse("feedback:annotate", args=[queue.pk]): {
            "admin": 403,
            "gov": 403,
            "eng": 403,
            "owner": 403,
            "ann1": 200,
            "ann2": 200,
            "fin_eng": 403,
        },
    }


def test_page_matrix(world, rated):
    for url, statuses in _pages(rated).items():
        for username in USERS:
            response = client_for(world, username).get(url)
            if username == "anon":
                assert response.status_code == 302 and reverse("accounts:login") in response["Location"], url
                continue
            assert response.status_code == statuses[username], (url, username, response.status_code)


def test_annotators_see_their_queues_and_nothing_else(world, rated):
    body = client_for(world, "ann1").get(reverse("feedback:index")).content.decode()
    assert "support/weekly" in body
    assert f'href="{reverse("feedback:queue", args=[rated["queue"].pk])}"' not in body  # no results for them
    assert reverse("feedback:annotate", args=[rated["queue"].pk]) in body
    nav = [
        item["key"] for item in client_for(world, "ann1").get(reverse("feedback:index")).context["nav_items"]
    ]
    assert nav == ["feedback", "accounts"]


def test_an_annotator_not_assigned_does_not_see_the_queue(world, rated):
    from tests.factories import UserFactory, member

    ann3 = member(UserFactory(username="ann3"), world.support, "annotator")
    client = Client()
    client.force_login(ann3)
    assert "support/weekly" not in client.get(reverse("feedback:index")).content.decode()
    assert client.get(reverse("feedback:annotate", args=[rated["queue"].pk])).status_code == 404


def test_annotating_one_item_shows_only_redacted_text_and_no_other_ratings(world, rated):
    client = client_for(world, "ann1")
    body = client.get(reverse("feedback:annotate", args=[rated["queue"].pk])).content.decode()
    assert "ana.garcia@example.com" not in body
    assert '<mark class="pii">[EMAIL_ADDRESS]</mark>' in body
    assert "support-reply</code> v1" in body  # the prompt version
    assert 'name="helpfulness"' in body and "<kbd" in body
    assert "js/annotate.js" in body
    # ann2's helpfulness of 1 on the rated item is never shown to ann1; ann1 gets another item
    slot = annotation_next(actor=world.ann1, queue=rated["queue"])
    assert slot.item_id != rated["item"].pk


def test_submit_skip_and_a_value_off_the_scale(world, rated):
    client = client_for(world, "ann1")
    url = reverse("feedback:annotate", args=[rated["queue"].pk])
    client.get(url)
    slot = annotation_next(actor=world.ann1, queue=rated["queue"])
    off = client.post(
        url, {"slot": slot.pk, "action": "submit", "ok": "true", "helpfulness": "9", "topic": "billing"}
    )
    assert off.status_code == 422
    assert "helpfulness: 9 is off the scale; allowed: whole numbers from 1 to 5." in off.content.decode()
    before = Annotation.objects.count()
    ok = client.post(
        url, {"slot": slot.pk, "action": "submit", "ok": "false", "helpfulness": "2", "topic": "billing"}
    )
    assert ok.status_code == 302
    saved = Annotation.objects.get(slot=slot)
    assert saved.values == {"ok": False, "helpfulness": 2, "topic": "billing"} and saved.seconds is not None
    assert Annotation.objects.count() == before + 1
    nxt = annotation_next(actor=world.ann1, queue=rated["queue"])
    assert client.post(url, {"slot": nxt.pk, "action": "skip"}).status_code == 302
    assert annotation_next(actor=world.ann1, queue=rated["queue"]).item_id != nxt.item_id


def test_someone_elses_slot_cannot_be_submitted(world, rated):
    slot = annotation_next(actor=world.ann2, queue=rated["queue"])
    client = client_for(world, "ann1")
    url = reverse("feedback:annotate", args=[rated["queue"].pk])
    response = client.post(
        url, {"slot": slot.pk, "action": "submit", **{k: str(v).lower() for k, v in VALID.items()}}
    )
    assert response.status_code == 422  # lease_lost: shown, nothing saved
    assert not Annotation.objects.filter(slot=slot).exists()


def test_queue_page_shows_progress_agreement_and_disagreements(world, rated):
    body = client_for(world, "eng").get(reverse("feedback:queue", args=[rated["queue"].pk])).content.decode()
    assert 'id="agreement"' in body and "Krippendorff" in body
    assert 'data-criterion="helpfulness"' in body
    assert reverse("feedback:item", args=[rated["item"].pk]) in body
    assert 'data-annotator="ann1"' in body and 'data-annotator="ann2"' in body


def test_adjudication_page_governance_decides(world, rated):
    url = reverse("feedback:item", args=[rated["item"].pk])
    eng_body = client_for(world, "eng").get(url).content.decode()
    assert 'id="ratings"' in eng_body and "Save the final values" not in eng_body
    assert client_for(world, "eng").post(url, {"helpfulness": "4"}).status_code == 403
    before = AuditEvent.objects.filter(action="feedback.item_adjudicated").count()
    response = client_for(world, "gov").post(url, {"helpfulness": "4", "note": "agreed in review"})
    assert response.status_code == 302
    assert Adjudication.objects.get(item=rated["item"]).values == {"helpfulness": 4}
    assert AuditEvent.objects.filter(action="feedback.item_adjudicated").count() == before + 1
    assert client_for(world, "gov").post(url, {"helpfulness": "8"}).status_code == 422


def test_schema_and_queue_forms(world, events):
    client = client_for(world, "gov")
    import json

    bad = client.post(reverse("feedback:schemas"), {"team": "support", "name": "bad", "criteria": "[{"})
    assert bad.status_code == 422 and "Not valid JSON" in bad.content.decode()
    off = client.post(
        reverse("feedback:schemas"),
        {
            "team": "support",
            "name": "bad",
            "criteria": json.dumps([{"name": "x", "kind": "scale", "min": 3, "max": 1}]),
        },
    )
    assert off.status_code == 422 and "min &lt; max" in off.content.decode()
    ok = client.post(
        reverse("feedback:schemas"), {"team": "support", "name": "rubric", "criteria": json.dumps(RUBRIC)}
    )
    assert ok.status_code == 302 and RatingSchema.objects.filter(name="rubric").exists()
    schema = RatingSchema.objects.get(name="rubric")
    created = client.post(
        reverse("feedback:queue_new"),
        {
            "team": "support",
            "name": "from-ui",
            "schema": schema.pk,
            "kind": "sample",
            "sampling_rate": "1",
            "size": "4",
            "overlap": "2",
            "lease_minutes": "30",
            "assignees": ["ann1", "ann2"],
            "model": "gemini-2.5-flash",
        },
    )
    assert created.status_code == 302, created.content.decode()[:2000]
    queue = AnnotationQueue.objects.get(name="from-ui")
    assert queue.item_count == 4 and set(queue.assignees.values_list("username", flat=True)) == {
        "ann1",
        "ann2",
    }


def test_export_and_download(world, rated):
    client = client_for(world, "gov")
    response = client.post(
        reverse("feedback:export", args=[rated["queue"].pk]), {"kind": "sft", "name": "support-sft"}
    )
    assert response.status_code == 302
    dataset = Dataset.objects.get(name="support-sft")
    download = client.get(reverse("feedback:dataset_download", args=[dataset.pk]))
    assert download.content.decode() == dataset.content and '"Fixed."' in dataset.content
    assert dataset.lineage[0]["events"] == [rated["item"].event_id]
    assert dataset.lineage[0]["item"] == rated["item"].pk
    empty = client.post(reverse("feedback:export", args=[rated["queue"].pk]), {"kind": "preference"})
    assert empty.status_code in (302, 422)


INLINE = [
    re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)[^>]*>", re.I),
    re.compile(r"\son[a-z]+\s*=", re.I),
    re.compile(r"\sstyle\s*=", re.I),
]


def test_feedback_pages_have_no_inline_script_handler_or_style(world, rated):
    for url in _pages(rated):
        if "download" in url:
            continue
        user = "ann1" if "annotate" in url else "gov"
        body = client_for(world, user).get(url).content.decode()
        for pattern in INLINE:
            assert not pattern.search(body), (url, pattern.pattern, pattern.search(body))


def test_the_annotation_page_in_spanish(world, rated):
    client = client_for(world, "ann1")
    client.cookies["django_language"] = "es"
    body = client.get(reverse("feedback:annotate", args=[rated["queue"].pk])).content.decode()
    assert "Tu valoración" in body and "Pulgar arriba" in body and "Saltar" in body
    queue_page = client_for(world, "gov")
    queue_page.cookies["django_language"] = "es"
    assert (
        "Alfa de Krippendorff"
        in queue_page.get(reverse("feedback:queue", args=[rated["queue"].pk])).content.decode()
    )
