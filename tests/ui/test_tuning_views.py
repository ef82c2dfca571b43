"""The tuning pages: who sees which page, filing a request through the form (saved as a draft, or sent
for approval at once), its page while the job runs (htmx refreshes the job panel), and cancelling."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.registry.models import Provider
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.models import TuningRequest, TuningStatus
from apps.tuning.services import tuning_request_create
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
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    return adapter_create(actor=world.eng, base_model=model, name="support-tone")


@pytest.fixture
def draft(world, adapter):
    return tuning_request_create(
        actor=world.eng,
        adapter=adapter,
        train_dataset_uri="gs://data/support/train.jsonl",
        estimated_hours=2,
        justification="Tone drift",
        accelerator_type="NVIDIA_L4",
        accelerator_count=1,
        machine_type="g2-standard-12",
    )


PAGES = {
    "tuning:list": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    "tuning:new": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 403, "fin_eng": 200},
    "tuning:request": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, draft):
    url = reverse(page, args=[draft.pk]) if page == "tuning:request" else reverse(page)
    for username in USERS:
        response = client_for(world, username).get(url)
        if username == "anon":
            assert response.status_code == 302
            continue
        assert response.status_code == PAGES[page][username], (page, username)


def test_filing_and_sending_a_request_through_the_form(world, adapter):
    response = client_for(world, "eng").post(
        reverse("tuning:new"),
        {
            "adapter": adapter.pk,
            "train_dataset_uri": "gs://data/support/train.jsonl",
            "rank": "16",
            "epochs": "2",
            "accelerator_type": "NVIDIA_L4",
            "accelerator_count": "1",
            "machine_type": "g2-standard-12",
            "estimated_hours": "1.5",
            "justification": "Our tone",
            "submit": "1",
        },
    )
    request = TuningRequest.objects.get()
    assert response["Location"] == reverse("tuning:request", args=[request.pk])
    assert request.status == TuningStatus.PENDING_APPROVAL
    assert request.hyperparameters["rank"] == 16 and request.hyperparameters["epochs"] == 2
    review = client_for(world, "gov").get(
        reverse("workflows:request", args=[ApprovalRequest.objects.get().pk])
    )
    assert (
        "Tuning request" in review.content.decode()
        and "gs://data/support/train.jsonl" in review.content.decode()
    )


def test_the_form_says_what_is_wrong_and_saves_nothing(world, adapter):
    response = client_for(world, "eng").post(
        reverse("tuning:new"),
        {
            "adapter": adapter.pk,
            "train_dataset_uri": "ftp://nowhere",
            "accelerator_count": "0",
            "estimated_hours": "1",
            "justification": "x",
        },
    )
    assert response.status_code == 200
    assert "train_dataset_uri: a JSONL dataset at" in response.content.decode()
    assert not TuningRequest.objects.exists()


def test_the_job_panel_refreshes_itself_while_the_job_runs(world, draft):
    TuningRequest.objects.filter(pk=draft.pk).update(
        status=TuningStatus.RUNNING,
        job_name="atalaya-tuning-1",
        job_backend="local",
        progress=0.4,
        log_tail='{"event": "progress"}',
    )
    client = client_for(world, "eng")
    page = client.get(reverse("tuning:request", args=[draft.pk])).content.decode()
    assert 'hx-trigger="every 3s"' in page and 'value="0.400000"' in page
    url = reverse("tuning:request", args=[draft.pk])
    partial = client.get(url, {"shown": "running"}, HTTP_HX_REQUEST="true").content.decode()
    assert partial.lstrip().startswith('<section class="card" id="tuning-job"') and "<html" not in partial
    # The job ended since the page was drawn: the browser reloads the whole page (state, buttons).
    TuningRequest.objects.filter(pk=draft.pk).update(status=TuningStatus.SUCCEEDED)
    refresh = client.get(url, {"shown": "running"}, HTTP_HX_REQUEST="true")
    assert refresh["HX-Refresh"] == "true" and refresh.content == b""
    TuningRequest.objects.filter(pk=draft.pk).update(status=TuningStatus.SUCCEEDED)
    assert "every 3s" not in client.get(reverse("tuning:request", args=[draft.pk])).content.decode()


def test_cancelling_a_draft_from_its_page_and_refusals(world, draft):
    assert client_for(world, "gov").post(reverse("tuning:cancel", args=[draft.pk])).status_code == 403
    assert client_for(world, "fin_eng").post(reverse("tuning:cancel", args=[draft.pk])).status_code == 404
    response = client_for(world, "eng").post(reverse("tuning:cancel", args=[draft.pk]))
    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == TuningStatus.CANCELLED
    page = client_for(world, "eng").get(reverse("tuning:request", args=[draft.pk])).content.decode()
    assert "Cancel the request" not in page and "Send for approval" not in page
