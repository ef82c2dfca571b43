"""The registry pages: who sees which page, registering a base model, an adapter and a version through
the forms, and an alias moved through the review page, with a refused or invalid write changing nothing."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.registry.models import Adapter, AdapterAlias, AdapterVersion, AliasMove, FoundationModel, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.workflows.models import ApprovalRequest

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_eng"]


def client_for(world, username: str) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


@pytest.fixture
def adapter(world):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.VERTEX,
        model_id="gemini-2.5-flash",
        context_window=1_048_576,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone", description="Our tone")
    adapter_version_register(
        actor=world.eng,
        adapter=adapter,
        artifact_uri="gs://artifacts/support-tone/1",
        metrics={"train_loss": 0.42},
        lineage={"tuning_request": 3, "approved_by": "gov"},
    )
    return adapter


# fin_eng is an engineer of finance only: they reach the registry but not support's adapter.
PAGES = {
    "registry:index": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    "registry:base_model_new": {
        "admin": 200,
        "gov": 403,
        "eng": 200,
        "owner": 403,
        "ann1": 403,
        "fin_eng": 200,
    },
    "registry:adapter_new": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 403, "fin_eng": 200},
    "registry:adapter": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    "registry:version_new": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 404, "fin_eng": 404},
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, adapter):
    url = (
        reverse(page, args=[adapter.pk])
        if page in {"registry:adapter", "registry:version_new"}
        else reverse(page)
    )
    for username in USERS:
        response = client_for(world, username).get(url)
        if username == "anon":
            assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
            continue
        assert response.status_code == PAGES[page][username], (page, username, response.status_code)


def test_the_registry_is_in_the_navigation_of_its_readers_only(world):
    def keys(username):
        response = client_for(world, username).get(reverse("accounts:tokens"))
        return [item["key"] for item in response.context["nav_items"]]

    assert all("registry" in keys(u) for u in ("admin", "gov", "eng", "owner"))
    assert "registry" not in keys("ann1")


def test_finance_sees_nothing_of_support(world, adapter):
    html = client_for(world, "fin_eng").get(reverse("registry:index")).content.decode()
    assert "support-tone" not in html and "gemini-2.5-flash" not in html
    html = client_for(world, "eng").get(reverse("registry:index")).content.decode()
    assert 'data-adapter="support-tone"' in html and 'data-model="gemini-2.5-flash"' in html


def test_an_engineer_registers_a_model_an_adapter_and_a_version_through_the_forms(world):
    client = client_for(world, "eng")
    response = client.post(
        reverse("registry:base_model_new"),
        {
            "team": world.support.pk,
            "provider": "hugging_face",
            "model_id": "google/gemma-3-1b-it",
            "context_window": 32768,
        },
    )
    assert response.status_code == 302
    model = FoundationModel.objects.get(model_id="google/gemma-3-1b-it")

    response = client.post(
        reverse("registry:adapter_new"), {"base_model": model.pk, "name": "gemma-tone", "method": "lora"}
    )
    adapter = Adapter.objects.get(name="gemma-tone")
    assert response["Location"] == reverse("registry:adapter", args=[adapter.pk])

    response = client.post(
        reverse("registry:version_new", args=[adapter.pk]),
        {
            "artifact_uri": "gs://artifacts/gemma-tone/1",
            "metrics": '{"train_loss": 0.5}',
            "hyperparameters": '{"rank": 8}',
        },
    )
    assert response.status_code == 302
    page = client.get(reverse("registry:adapter", args=[adapter.pk])).content.decode()
    assert 'data-version="1"' in page and "gs://artifacts/gemma-tone/1" in page and "train_loss" in page


def test_invalid_forms_say_why_and_write_nothing(world, adapter):
    client = client_for(world, "eng")
    before = AdapterVersion.objects.count()
    response = client.post(
        reverse("registry:version_new", args=[adapter.pk]), {"artifact_uri": "gs://x", "metrics": "{not json"}
    )
    assert response.status_code == 200
    assert "Metrics: not valid JSON" in response.content.decode()
    response = client.post(
        reverse("registry:version_new", args=[adapter.pk]), {"artifact_uri": "ftp://nowhere"}
    )
    assert "artifact_uri: use a URI starting with" in response.content.decode()
    response = client.post(
        reverse("registry:adapter_new"),
        {"base_model": adapter.base_model.pk, "name": "support-tone", "method": "lora"},
    )
    assert "already exists" in response.content.decode()
    assert AdapterVersion.objects.count() == before and Adapter.objects.count() == 1


def test_governance_cannot_write_through_the_forms(world, adapter):
    client = client_for(world, "gov")
    response = client.post(reverse("registry:version_new", args=[adapter.pk]), {"artifact_uri": "gs://x/2"})
    assert response.status_code == 403
    response = client.post(
        reverse("registry:alias_move", args=[adapter.pk]), {"alias": "champion", "version": 1}
    )
    assert response.status_code == 403
    assert not AliasMove.objects.exists() and adapter.versions.count() == 1


def test_an_alias_move_is_requested_reviewed_and_applied(world, adapter):
    eng = client_for(world, "eng")
    response = eng.post(
        reverse("registry:alias_move", args=[adapter.pk]),
        {"alias": "champion", "version": "1", "reason": "lowest loss"},
    )
    assert response.status_code == 302
    request = ApprovalRequest.objects.get(subject_kind="alias_move")
    assert not AdapterAlias.objects.exists()

    gov = client_for(world, "gov")
    review = gov.get(reverse("workflows:request", args=[request.pk])).content.decode()
    assert (
        "Adapter alias move" in review
        and "gs://artifacts/support-tone/1" in review
        and "lowest loss" in review
    )
    # The requester is not offered the decision (four eyes).
    assert 'name="decision"' not in eng.get(reverse("workflows:request", args=[request.pk])).content.decode()
    response = gov.post(
        reverse("workflows:decide", args=[request.pk]), {"decision": "approve", "comment": "ok"}
    )
    assert response.status_code == 302

    assert AdapterAlias.objects.get(adapter=adapter, name="champion").version.number == 1
    page = eng.get(reverse("registry:adapter", args=[adapter.pk])).content.decode()
    assert "approved by gov" in page
