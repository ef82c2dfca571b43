"""API v1 for feedback: end-user feedback, the annotation flow end to end, bad input, and the
permission matrix (every endpoint × every role: the status, and that a refusal changed nothing)."""

import json
from dataclasses import dataclass
from typing import Any

import pytest

from apps.audit.models import AuditEvent
from apps.feedback.models import (
    Adjudication,
    Annotation,
    AnnotationQueue,
    AnnotationSlot,
    Dataset,
    EndUserFeedback,
    RatingSchema,
)
from apps.feedback.services import adjudication_set, annotation_next, annotation_submit, dataset_export
from tests.factories import make_token
from tests.feedback.conftest import RUBRIC, VALID, event_spec, store_events

pytestmark = pytest.mark.django_db


def post(client, url, body):
    return client.post(url, data=json.dumps(body), content_type="application/json")


# End-user feedback


@pytest.fixture
def app_client(world, api_as):
    return api_as(token=make_token(world.eng, world.support, "feedback:write"))


def test_feedback_is_idempotent_per_request_and_end_user(world, events, app_client):
    body = {"request_id": "r-1", "end_user": "u-9", "thumbs": False, "comment": "Wrong order"}
    first = post(app_client, "/api/v1/feedback/", body)
    assert first.status_code == 201, first.content
    assert first.json()["linked"] is True and first.json()["changed"] is True
    again = post(app_client, "/api/v1/feedback/", body)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"] and again.json()["changed"] is False
    changed = post(app_client, "/api/v1/feedback/", {**body, "thumbs": True, "comment": ""})
    assert changed.status_code == 200 and changed.json()["changed"] is True
    assert EndUserFeedback.objects.get().thumbs is True  # the latest answer counts
    other_user = post(app_client, "/api/v1/feedback/", {**body, "end_user": "u-10"})
    assert other_user.status_code == 201
    assert EndUserFeedback.objects.count() == 2


def test_feedback_before_its_log_is_accepted_and_linked_later(world, app_client):
    response = post(app_client, "/api/v1/feedback/", {"request_id": "later-1", "score": 2})
    assert response.status_code == 201 and response.json()["linked"] is False
    store_events(world.eng, world.support, [event_spec("later-1")])
    assert (
        post(app_client, "/api/v1/feedback/", {"request_id": "later-1", "score": 2}).json()["linked"] is True
    )


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"request_id": "r-1", "score": 7}, 422, "invalid_score"),
        ({"request_id": "r-1", "score": 0}, 422, "invalid_score"),
        ({"request_id": "r-1"}, 422, "empty_feedback"),
        ({"request_id": "r-1", "comment": "x" * 4001}, 422, "comment_too_long"),
        ({"request_id": "r" * 129, "thumbs": True}, 400, "invalid"),
        ({"request_id": "r-1", "thumbs": "maybe"}, 400, "invalid"),
        ({"request_id": "r-1", "thumbs": True, "stars": 5}, 400, "unknown_fields"),
        ({"thumbs": True}, 400, "invalid"),
    ],
)
def test_bad_feedback_is_refused_in_the_error_format(world, app_client, body, status, code):
    response = post(app_client, "/api/v1/feedback/", body)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    assert not EndUserFeedback.objects.exists()


def test_feedback_needs_its_scope_and_a_sender_role(world, api_as):
    no_scope = api_as(token=make_token(world.eng, world.support, "logs:write"))
    response = post(no_scope, "/api/v1/feedback/", {"request_id": "r-1", "thumbs": True})
    assert response.status_code == 403 and response.json()["error"]["code"] == "missing_scope"
    annotator = api_as(token=make_token(world.ann1, world.support, "feedback:write"))
    assert post(annotator, "/api/v1/feedback/", {"request_id": "r-1", "thumbs": True}).status_code == 403
    assert not EndUserFeedback.objects.exists()


def test_a_malformed_body_is_400(world, app_client):
    response = app_client.post("/api/v1/feedback/", data="{nope", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_request"


# The annotation flow through the API


def test_annotation_flow_end_to_end(world, events, api_as):
    gov, eng = api_as(world.gov), api_as(world.eng)
    bad = post(
        gov, "/api/v1/feedback/schemas/", {"name": "bad", "criteria": [{"name": "x", "kind": "stars"}]}
    )
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_schema"
    assert post(gov, "/api/v1/feedback/schemas/", {"name": "rubric", "criteria": RUBRIC}).status_code == 201
    created = post(
        eng,
        "/api/v1/feedback/queues/",
        {
            "name": "weekly",
            "schema": "rubric",
            "size": 2,
            "overlap": 2,
            "assignees": ["ann1", "ann2"],
            "filters": {"model": "gemini-2.5-flash"},
        },
    )
    assert created.status_code == 201, created.content
    queue_id = created.json()["id"]
    assert created.json()["items"] == 2

    for username, helpfulness in (("ann1", 4), ("ann2", 2)):
        client = api_as(getattr(world, username))
        while (response := client.post(f"/api/v1/feedback/queues/{queue_id}/next")).status_code == 200:
            slot = response.json()
            text = json.dumps(slot)
            assert "ana.garcia@example.com" not in text and "[EMAIL_ADDRESS]" in text  # redacted only
            off = post(
                client,
                f"/api/v1/feedback/slots/{slot['slot']}/submit",
                {"values": {**VALID, "helpfulness": 9}},
            )
            assert off.status_code == 422
            assert off.json()["error"]["details"] == {"criterion": "helpfulness", "min": 1, "max": 5}
            ok = post(
                client,
                f"/api/v1/feedback/slots/{slot['slot']}/submit",
                {"values": {**VALID, "helpfulness": helpfulness}},
            )
            assert ok.status_code == 201, ok.content
        assert response.status_code == 204

    results = eng.get(f"/api/v1/feedback/queues/{queue_id}/results").json()
    by_criterion = {a["criterion"]: a for a in results["agreement"]}
    assert by_criterion["ok"]["alpha"] == {"nominal": None}  # everyone said yes: no variation
    assert by_criterion["helpfulness"]["alpha"]["interval"] < 0  # systematic disagreement
    assert by_criterion["helpfulness"]["kappa"][0]["annotators"] == ["ann1", "ann2"]
    helpfulness = next(s for s in results["scores"] if s["criterion"] == "helpfulness")
    assert helpfulness["n"] == 4 and helpfulness["mean"] == 3.0 and helpfulness["method"] == "t"
    assert helpfulness["low"] < 3.0 < helpfulness["high"]
    assert len(results["disagreements"]) == 2

    item = results["disagreements"][0]["item"]
    adjudicated = api_as(world.gov).put(
        f"/api/v1/feedback/items/{item}/adjudication",
        data=json.dumps({"values": {"helpfulness": 3, "corrected": "We are sorry: it ships today."}}),
        content_type="application/json",
    )
    assert adjudicated.status_code == 200, adjudicated.content

    exported = post(eng, f"/api/v1/feedback/queues/{queue_id}/datasets", {"kind": "sft"})
    assert exported.status_code == 201, exported.content
    dataset = exported.json()
    assert (
        dataset["uri"].startswith("atalaya://datasets/")
        and dataset["row_count"] == 2
        and dataset["version"] == 1
    )
    detail = eng.get(f"/api/v1/datasets/{dataset['id']}/").json()
    assert {tuple(row["request_ids"]) for row in detail["lineage"]} <= {(f"r-{i}",) for i in range(10)}
    download = eng.get(f"/api/v1/datasets/{dataset['id']}/download")
    assert download["Content-Type"].startswith("application/jsonl")
    assert download["ETag"] == f'"{dataset["content_hash"]}"'
    rows = [json.loads(line) for line in download.content.decode().splitlines()]
    assert len(rows) == 2
    answers = sorted(r["messages"][-1]["content"] for r in rows)
    assert "We are sorry: it ships today." in answers  # the adjudicated correction
    assert all(r["messages"][-1]["role"] == "assistant" for r in rows)
    again = post(eng, f"/api/v1/feedback/queues/{queue_id}/datasets", {"kind": "sft"})
    assert again.json()["version"] == 2


# The permission matrix


@dataclass
class Scene:
    world: Any
    queue: AnnotationQueue
    held_slot: AnnotationSlot  # held by ann1
    item_id: int
    dataset: Dataset


@pytest.fixture
def scene(world, events, queue):
    for user in (world.ann1, world.ann2):
        slot = annotation_next(actor=user, queue=queue)
        annotation_submit(actor=user, slot_id=slot.pk, values=VALID)
    item = Annotation.objects.first().item
    adjudication_set(actor=world.gov, item=item, values={"corrected": "Fixed answer."})
    dataset = dataset_export(actor=world.gov, queue=queue, kind="sft")
    held = annotation_next(actor=world.ann1, queue=queue)
    return Scene(world, queue, held, item.pk, dataset)


def snapshot():
    return {
        "schemas": RatingSchema.objects.count(),
        "queues": AnnotationQueue.objects.count(),
        "slots": sorted(AnnotationSlot.objects.values_list("id", "state", "annotator_id")),
        "annotations": Annotation.objects.count(),
        "adjudications": sorted(Adjudication.objects.values_list("id", "values")),
        "datasets": Dataset.objects.count(),
        "feedback": EndUserFeedback.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


ROLES = ["admin", "gov", "eng", "owner", "ann1", "fin_eng", "anon"]
MANAGERS = {"admin", "gov", "eng"}


def _expect(**statuses: int) -> dict[str, int]:
    return {"anon": 401, **statuses}


def _all(status: int, **others: int) -> dict[str, int]:
    return _expect(**{role: status for role in ROLES if role != "anon"} | others)


ENDPOINTS = {
    "schemas_list": ("get", lambda s: "/api/v1/feedback/schemas/", None, _all(200)),
    "schemas_create": (
        "post",
        lambda s: "/api/v1/feedback/schemas/",
        {"team": "support", "name": "new", "criteria": RUBRIC},
        _expect(admin=201, gov=201, eng=201, owner=403, ann1=403, fin_eng=404),
    ),
    "queues_list": ("get", lambda s: "/api/v1/feedback/queues/", None, _all(200)),
    "queues_create": (
        "post",
        lambda s: "/api/v1/feedback/queues/",
        {"team": "support", "name": "new", "schema": "rubric", "size": 2},
        _expect(admin=201, gov=201, eng=201, owner=403, ann1=403, fin_eng=404),
    ),
    "queue_detail": (
        "get",
        lambda s: f"/api/v1/feedback/queues/{s.queue.pk}/",
        None,
        _all(404, admin=200, gov=200, eng=200),
    ),
    "queue_results": (
        "get",
        lambda s: f"/api/v1/feedback/queues/{s.queue.pk}/results",
        None,
        _all(404, admin=200, gov=200, eng=200),
    ),
    "queue_next": ("post", lambda s: f"/api/v1/feedback/queues/{s.queue.pk}/next", None, _all(404, ann1=200)),
    "slot_submit": (
        "post",
        lambda s: f"/api/v1/feedback/slots/{s.held_slot.pk}/submit",
        {"values": VALID},
        _all(404, ann1=201),
    ),
    "slot_skip": (
        "post",
        lambda s: f"/api/v1/feedback/slots/{s.held_slot.pk}/skip",
        None,
        _all(404, ann1=204),
    ),
    "adjudicate": (
        "put",
        lambda s: f"/api/v1/feedback/items/{s.item_id}/adjudication",
        {"values": {"ok": False}},
        _all(404, admin=403, gov=200, eng=403),
    ),
    "export": (
        "post",
        lambda s: f"/api/v1/feedback/queues/{s.queue.pk}/datasets",
        {"kind": "sft"},
        _all(404, admin=201, gov=201, eng=201),
    ),
    "datasets_list": ("get", lambda s: "/api/v1/datasets/", None, _all(200)),
    "dataset_detail": (
        "get",
        lambda s: f"/api/v1/datasets/{s.dataset.pk}/",
        None,
        _all(404, admin=200, gov=200, eng=200),
    ),
    "dataset_download": (
        "get",
        lambda s: f"/api/v1/datasets/{s.dataset.pk}/download",
        None,
        _all(404, admin=200, gov=200, eng=200),
    ),
    "end_user_feedback": (
        "post",
        lambda s: "/api/v1/feedback/",
        {"team": "support", "request_id": "r-1", "thumbs": False},
        _expect(admin=201, gov=403, eng=201, owner=403, ann1=403, fin_eng=404),
    ),
}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_permission_matrix(name, role, scene, api_as):
    method, url, body, statuses = ENDPOINTS[name]
    client = api_as() if role == "anon" else api_as(getattr(scene.world, role))
    before = snapshot()
    kwargs = {"data": json.dumps(body), "content_type": "application/json"} if body is not None else {}
    response = getattr(client, method)(url(scene), **kwargs)
    expected = statuses[role]
    assert response.status_code == expected, (response.status_code, response.content[:300])
    after = snapshot()
    if expected >= 400:
        assert set(response.json()) == {"error"}
        assert after == before, "a refused call changed something"
    elif method == "get":
        assert after == before, "a read changed something"
        listed = response.json().get("results") if "list" in name else None
        if listed is not None:
            assert bool(listed) == (role in MANAGERS or (name == "queues_list" and role == "ann1"))
            assert all(row.get("team", "support") == "support" for row in listed)


def test_tokens_need_the_feedback_scopes(scene, api_as):
    world = scene.world
    read_only = api_as(token=make_token(world.eng, world.support, "feedback:read"))
    assert read_only.get("/api/v1/feedback/queues/").status_code == 200
    refused = post(read_only, "/api/v1/feedback/schemas/", {"name": "x", "criteria": RUBRIC})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    writer = api_as(token=make_token(world.ann1, world.support, "annotations:write"))
    assert writer.post(f"/api/v1/feedback/queues/{scene.queue.pk}/next").status_code == 200
    assert writer.get("/api/v1/feedback/queues/").status_code == 403


WRITES = [
    ("/api/v1/feedback/", {"request_id": "r-1", "thumbs": True}),
    ("/api/v1/feedback/schemas/", {"name": "x", "criteria": RUBRIC}),
    ("/api/v1/feedback/queues/", {"name": "x", "schema": "rubric", "size": 1}),
]


@pytest.mark.parametrize("url, good", WRITES)
def test_bad_bodies_are_refused_in_the_error_format(url, good, world, api_as):
    client = api_as(token=make_token(world.eng, world.support, "all"))
    before = snapshot()
    cases = [
        ('{"name": "oops",', "application/json", 400, "malformed_request"),
        ("[1, 2, 3]", "application/json", 400, "invalid"),
        ("a=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
        (json.dumps({**good, "surprise": 1}), "application/json", 400, "unknown_fields"),
        ("x" * (1024 * 1024 + 10), "application/json", 413, "request_too_large"),
    ]
    for body, content_type, status, code in cases:
        response = client.post(url, data=body, content_type=content_type)
        assert response.status_code == status, (body[:30], response.content[:200])
        assert response.json()["error"]["code"] == code
    assert snapshot() == before
