"""Golden-set pages: each page for each role, the case forms (each save a new version), import with an
error naming the line, export, the links from the prompt page, a log event and a queue's corrected answers,
and the list in Spanish."""

import json

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.evaluation.golden_sets import golden_cases, golden_set_latest_version
from apps.evaluation.models import GoldenCase, GoldenSet, GoldenSetVersion
from apps.feedback.services import (
    annotation_next,
    annotation_queue_create,
    annotation_submit,
    rating_schema_create,
)
from tests.evaluation.golden_helpers import make_golden_set
from tests.feedback.conftest import RUBRIC, event_spec, store_events

pytestmark = pytest.mark.django_db

USERS = ["admin", "gov", "eng", "owner", "ann1", "fin_eng", "anon"]


@pytest.fixture
def scene(world):
    golden_set = make_golden_set(world)
    [event] = store_events(
        world.eng,
        world.support,
        [
            event_spec(
                "r-1", prompt="greeting", metadata={"variables": {"company": "Acme", "question": "Hi?"}}
            )
        ],
    )
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)
    queue = annotation_queue_create(
        actor=world.eng, team=world.support, name="q", schema=schema, size=1, assignees=[world.ann1]
    )
    slot = annotation_next(actor=world.ann1, queue=queue)
    values = {"ok": False, "helpfulness": 2, "topic": "delivery", "corrected": "A better answer."}
    annotation = annotation_submit(actor=world.ann1, slot_id=slot.pk, values=values)
    return {"set": golden_set, "event": event, "queue": queue, "annotation": annotation, "world": world}


def _client(world, username: str) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


def _snapshot():
    return (
        list(GoldenSet.objects.values_list("pk", "description")),
        list(GoldenSetVersion.objects.values_list("pk", "content_hash")),
        GoldenCase.objects.count(),
        AuditEvent.objects.count(),
    )


WRITERS_OWN = {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 404, "fin_eng": 404}
PAGES = [
    (
        "list",
        lambda s: reverse("golden:list"),
        {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    ),
    (
        "create",
        lambda s: reverse("golden:create"),
        {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 403, "fin_eng": 200},
    ),
    (
        "detail",
        lambda s: reverse("golden:detail", args=[s["set"].pk]),
        {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    ),
    (
        "detail_v1",
        lambda s: reverse("golden:detail", args=[s["set"].pk]) + "?version=1",
        {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    ),
    ("case_create", lambda s: reverse("golden:case_create", args=[s["set"].pk]), WRITERS_OWN),
    ("case_edit", lambda s: reverse("golden:case_edit", args=[s["set"].pk, 1]), WRITERS_OWN),
    ("import", lambda s: reverse("golden:import", args=[s["set"].pk]), WRITERS_OWN),
    (
        "export",
        lambda s: reverse("golden:export", args=[s["set"].pk]) + "?format=csv",
        {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    ),
    (
        "from_event",
        lambda s: reverse("golden:from_event", args=[s["event"].pk]),
        {"admin": 200, "gov": 403, "eng": 200, "owner": 404, "ann1": 404, "fin_eng": 404},
    ),
    (
        "from_annotation",
        lambda s: reverse("golden:from_annotation", args=[s["annotation"].pk]),
        {"admin": 200, "gov": 404, "eng": 200, "owner": 404, "ann1": 404, "fin_eng": 404},
    ),
]


@pytest.mark.parametrize("username", USERS)
@pytest.mark.parametrize(("name", "url", "expected"), PAGES, ids=[p[0] for p in PAGES])
def test_page_matrix(name, url, expected, username, scene):
    before = _snapshot()
    response = _client(scene["world"], username).get(url(scene))
    if username == "anon":
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    else:
        assert response.status_code == expected[username], (name, username)
    assert _snapshot() == before


WRITES = [
    ("edit", lambda s: reverse("golden:edit", args=[s["set"].pk]), {"description": "changed"}),
    (
        "case_create",
        lambda s: reverse("golden:case_create", args=[s["set"].pk]),
        {"reference": "x", "base_version": 1},
    ),
    ("case_delete", lambda s: reverse("golden:case_delete", args=[s["set"].pk, 1]), {"base_version": 1}),
]


@pytest.mark.parametrize("username", ["gov", "owner", "ann1", "fin_eng", "anon"])
@pytest.mark.parametrize(("name", "url", "data"), WRITES, ids=[w[0] for w in WRITES])
def test_refused_writes_change_nothing(name, url, data, username, scene):
    before = _snapshot()
    response = _client(scene["world"], username).post(url(scene), data)
    assert response.status_code in (302, 403, 404)
    if username == "anon":
        assert reverse("accounts:login") in response["Location"]
    else:
        assert response.status_code in (403, 404)
    assert _snapshot() == before


def test_the_set_page_shows_the_latest_cases_and_history(scene):
    client = _client(scene["world"], "owner")
    body = client.get(reverse("golden:detail", args=[scene["set"].pk])).content.decode()
    assert 'id="cases"' in body and "refund" in body and "<code>30 days</code>" in body
    assert "Version 1" in body
    assert "New case" not in body and "Import" not in body  # a reader does not edit
    assert "Export CSV" in body


def test_creating_a_set_from_the_prompt_page(scene):
    world = scene["world"]
    client = _client(world, "eng")
    prompt = scene["set"].prompt
    page = client.get(reverse("catalog:prompt", args=["support", prompt.name])).content.decode()
    assert 'id="prompt-golden-sets"' in page and "support-basics" in page
    assert f"{reverse('golden:create')}?prompt={prompt.pk}" in page
    form = client.get(f"{reverse('golden:create')}?prompt={prompt.pk}").content.decode()
    assert 'value="greeting-golden"' in form
    response = client.post(
        reverse("golden:create"),
        {"team": "support", "name": "second", "prompt": prompt.pk, "description": "More"},
    )
    created = GoldenSet.objects.get(name="second")
    assert response.status_code == 302 and response["Location"] == reverse("golden:detail", args=[created.pk])
    assert golden_set_latest_version(golden_set=created).number == 1
    taken = client.post(reverse("golden:create"), {"team": "support", "name": "second"})
    assert taken.status_code == 422 and "already exists" in taken.content.decode()


def test_adding_editing_and_deleting_cases_make_versions(scene):
    client = _client(scene["world"], "eng")
    golden_set = scene["set"]
    added = client.post(
        reverse("golden:case_create", args=[golden_set.pk]),
        {
            "name": "json",
            "variables": '{"company": "Acme", "question": "Order?"}',
            "json_schema": '{"type": "object"}',
            "must_contain": "order\nstatus\n",
            "max_tokens": "100",
            "base_version": "1",
            "message": "one more",
        },
    )
    assert added.status_code == 302
    latest = golden_set_latest_version(golden_set=golden_set)
    case = golden_cases(version=latest)[-1]
    assert (latest.number, latest.message, case.must_contain, case.expect_json) == (
        2,
        "one more",
        ["order", "status"],
        True,
    )

    edit_page = client.get(reverse("golden:case_edit", args=[golden_set.pk, 5])).content.decode()
    assert "order\nstatus" in edit_page and 'name="base_version" value="2"' in edit_page
    edited = client.post(
        reverse("golden:case_edit", args=[golden_set.pk, 5]),
        {"name": "json v2", "variables": "{}", "expect_json": "on", "base_version": "2"},
    )
    assert edited.status_code == 302
    assert golden_cases(version=golden_set_latest_version(golden_set=golden_set))[-1].name == "json v2"

    deleted = client.post(reverse("golden:case_delete", args=[golden_set.pk, 1]), {"base_version": "3"})
    assert deleted.status_code == 302
    latest = golden_set_latest_version(golden_set=golden_set)
    assert latest.number == 4 and golden_cases(version=latest)[0].name == "order json"


@pytest.mark.parametrize(
    "data, field, message",
    [
        ({"variables": "{bad", "reference": "x"}, "variables", "Not valid JSON"),
        ({"regex": "(", "reference": ""}, "regex", "invalid regular expression"),
        ({"json_schema": '{"type": "nope"}'}, "json_schema", "invalid JSON schema"),
        ({"name": "nothing"}, None, "expects nothing"),
    ],
)
def test_a_bad_case_is_shown_on_its_field_and_nothing_is_saved(scene, data, field, message):
    before = _snapshot()
    response = _client(scene["world"], "eng").post(
        reverse("golden:case_create", args=[scene["set"].pk]), data | {"base_version": "1"}
    )
    assert response.status_code == 422
    form = response.context["form"]
    errors = form.errors.get(field or "__all__")
    assert errors and message in errors[0]
    assert _snapshot() == before


@pytest.mark.parametrize("number", ["²", "9" * 30, "0", "99"])
def test_a_version_number_that_is_not_one_is_not_found(scene, number):
    client = _client(scene["world"], "eng")
    golden_set = scene["set"]
    detail = client.get(reverse("golden:detail", args=[golden_set.pk]), {"version": number})
    export = client.get(reverse("golden:export", args=[golden_set.pk]), {"version": number})
    assert (detail.status_code, export.status_code) == (404, 404)


def test_a_prompt_id_that_is_not_one_is_ignored_on_the_new_set_form(scene):
    client = _client(scene["world"], "eng")
    for value in ("²", "9" * 30):
        response = client.get(reverse("golden:create"), {"prompt": value})
        assert response.status_code == 200 and response.context["form"].initial == {}


def test_a_case_delete_with_a_base_version_that_is_not_one_is_refused(scene):
    before = _snapshot()
    response = _client(scene["world"], "eng").post(
        reverse("golden:case_delete", args=[scene["set"].pk, 1]), {"base_version": "²"}
    )
    assert response.status_code == 400
    assert _snapshot() == before


def test_a_stale_edit_is_refused_on_the_form(scene):
    client = _client(scene["world"], "eng")
    client.post(reverse("golden:case_delete", args=[scene["set"].pk, 4]), {"base_version": "1"})
    before = _snapshot()
    response = client.post(
        reverse("golden:case_edit", args=[scene["set"].pk, 1]), {"reference": "new", "base_version": "1"}
    )
    assert response.status_code == 422 and "changed since you opened it" in response.content.decode()
    assert _snapshot() == before


def test_import_and_export_through_the_pages(scene):
    client = _client(scene["world"], "eng")
    golden_set = scene["set"]
    exported = client.get(reverse("golden:export", args=[golden_set.pk]) + "?format=jsonl")
    assert exported.status_code == 200 and exported["Content-Disposition"].endswith(
        'support-basics-v1.jsonl"'
    )
    content = exported.content + b'{"name": "bad", "max_tokens": "many"}\n'
    before = _snapshot()
    refused = client.post(
        reverse("golden:import", args=[golden_set.pk]),
        {"file": SimpleUploadedFile("cases.jsonl", content)},
    )
    assert refused.status_code == 422 and "line 5, field max_tokens" in refused.content.decode()
    assert _snapshot() == before
    fixed = content.replace(b'"max_tokens": "many"', b'"max_tokens": 9')
    done = client.post(
        reverse("golden:import", args=[golden_set.pk]), {"file": SimpleUploadedFile("cases.jsonl", fixed)}
    )
    assert done.status_code == 302
    latest = golden_set_latest_version(golden_set=golden_set)
    assert latest.case_count == 5 and latest.message == "Imported 5 cases (JSONL)"
    unknown = client.post(
        reverse("golden:import", args=[golden_set.pk]), {"file": SimpleUploadedFile("cases.txt", fixed)}
    )
    assert unknown.status_code == 422 and "Say the format" in unknown.content.decode()


def test_a_case_from_a_logged_event(scene):
    world, event = scene["world"], scene["event"]
    client = _client(world, "eng")
    page = client.get(reverse("logs:event", args=[event.pk])).content.decode()
    assert reverse("golden:from_event", args=[event.pk]) in page
    gov_page = _client(world, "gov").get(reverse("logs:event", args=[event.pk])).content.decode()
    assert (
        reverse("golden:from_event", args=[event.pk]) not in gov_page
    )  # governance reads, does not edit sets
    url = reverse("golden:from_event", args=[event.pk])
    chosen = client.get(url, {"golden_set": scene["set"].pk})
    form = chosen.context["form"]
    assert json.loads(form["variables"].value()) == {"company": "Acme", "question": "Hi?"}
    assert form["reference"].value() == event.output
    saved = client.post(
        url,
        {
            "golden_set": scene["set"].pk,
            "variables": json.dumps({"company": "Acme", "question": "Hi?"}),
            "reference": event.output,
            "must_not_contain": "password",
        },
    )
    assert saved.status_code == 302
    case = golden_cases(version=golden_set_latest_version(golden_set=scene["set"]))[-1]
    assert (case.source, case.source_ref, case.must_not_contain) == ("log", "r-1", ["password"])


def test_a_case_from_a_corrected_answer_on_the_queue_results(scene):
    world, annotation = scene["world"], scene["annotation"]
    client = _client(world, "eng")
    page = client.get(reverse("feedback:queue", args=[scene["queue"].pk])).content.decode()
    assert 'id="corrected-answers"' in page and "A better answer." in page
    url = reverse("golden:from_annotation", args=[annotation.pk])
    assert url in page
    gov_page = _client(world, "gov").get(reverse("feedback:queue", args=[scene["queue"].pk])).content.decode()
    assert url not in gov_page
    form = client.get(url, {"golden_set": scene["set"].pk}).context["form"]
    assert form["reference"].value() == "A better answer."
    saved = client.post(
        url,
        {
            "golden_set": scene["set"].pk,
            "variables": json.dumps({"company": "Acme", "question": "Hi?"}),
            "reference": "A better answer.",
        },
    )
    assert saved.status_code == 302
    case = golden_cases(version=golden_set_latest_version(golden_set=scene["set"]))[-1]
    assert (case.reference, case.source) == ("A better answer.", "annotation")


def test_the_list_in_spanish(scene):
    client = _client(scene["world"], "eng")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    body = client.get(reverse("golden:list")).content.decode()
    assert "Conjuntos de referencia" in body and "Nuevo conjunto de referencia" in body
    assert "Casos" in body
    detail = client.get(reverse("golden:detail", args=[scene["set"].pk])).content.decode()
    assert "Historial" in detail and "Nuevo caso" in detail
