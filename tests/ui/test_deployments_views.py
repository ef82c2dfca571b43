"""The deployment pages: who sees which page, the endpoint's split and history, promote and roll back as one
click each (offered and accepted for engineers, administrators and governance only), a request drafted
through the form, submitted, and reviewed on the review page; refused or invalid writes change nothing."""

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.cloud.jobs import get_serving_backend
from apps.cloud.jobs.base import BackendError
from apps.registry.models import AdapterAlias, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.tuning.deployments import (
    deployment_action_apply,
    deployment_create,
    deployment_deploy,
    deployment_promote,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.models import Deployment, DeploymentStatus
from apps.workflows.models import ApprovalRequest
from apps.workflows.services import approval_decision_record
from workers.deployments import apply_action

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_eng"]


def client_for(world, username: str) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


@pytest.fixture
def backend(settings, tmp_path):
    settings.JOB_BACKEND = "local"
    settings.LOCAL_ENDPOINTS_DIR = str(tmp_path / "serving")
    get_serving_backend.cache_clear()
    yield get_serving_backend()
    get_serving_backend.cache_clear()


class Scene:
    pass


@pytest.fixture
def scene(world, backend):
    """support-bot: v1 promoted (90 %), v2 a live canary (10 %)."""
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")
    v1 = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/tone/1")
    v2 = adapter_version_register(
        actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/tone/2", metrics={"train_loss": 0.3}
    )
    AdapterAlias.objects.create(adapter=adapter, name="champion", version=v1, moved_by=world.gov)
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-bot")

    def live(version, strategy, percent):
        draft = deployment_create(
            actor=world.eng,
            endpoint=endpoint,
            adapter_version=version,
            strategy=strategy,
            traffic_percent=percent,
            justification="tone",
        )
        approval = deployment_submit(actor=world.eng, deployment=draft)
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")
        return deployment_deploy(deployment_id=draft.pk, backend=backend)

    s = Scene()
    s.v1, s.v2, s.endpoint = v1, v2, endpoint
    first = live(v1, "replace", None)
    deployment_promote(actor=world.eng, deployment=first)
    s.first = deployment_action_apply(deployment_id=first.pk, backend=backend)
    s.canary = live(v2, "canary", 10)
    s.first.refresh_from_db()
    s.canary.refresh_from_db()
    endpoint.refresh_from_db()
    return s


# fin_eng is an engineer of finance only: they reach the deployments but not support's endpoint.
PAGES = {
    "deployments:index": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    "deployments:new": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 403, "fin_eng": 200},
    "deployments:endpoint": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    "deployments:detail": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, scene):
    args = {"deployments:endpoint": [scene.endpoint.pk], "deployments:detail": [scene.canary.pk]}.get(
        page, []
    )
    url = reverse(page, args=args)
    for username in USERS:
        response = client_for(world, username).get(url)
        if username == "anon":
            assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
            continue
        assert response.status_code == PAGES[page][username], (page, username, response.status_code)


def test_deployments_are_a_tab_of_the_models_section_for_registry_readers_only(world):
    def models_item(username, url):
        response = client_for(world, username).get(url)
        return next((item for item in response.context["nav_items"] if item["key"] == "registry"), None)

    for username in ("admin", "gov", "eng", "owner"):
        item = models_item(username, reverse("deployments:index"))
        assert item is not None and item["active"]  # the Models section is the current one
    assert models_item("ann1", reverse("accounts:tokens")) is None
    html = client_for(world, "eng").get(reverse("deployments:index")).content.decode()
    assert f'href="{reverse("deployments:index")}" aria-current="page"' in html  # its tab


def test_the_endpoint_page_shows_the_split_and_the_history_with_who_requested_and_approved(world, scene):
    html = (
        client_for(world, "owner")
        .get(reverse("deployments:endpoint", args=[scene.endpoint.pk]))
        .content.decode()
    )
    assert f'data-deployed-model="{scene.first.deployed_model_id}" data-percent="90"' in html
    assert f'data-deployed-model="{scene.canary.deployed_model_id}" data-percent="10"' in html
    assert '<meter class="split-meter" min="0" max="100" value="90"' in html
    assert f'data-deployment="{scene.canary.pk}" data-status="live"' in html
    assert f'data-deployment="{scene.first.pk}" data-status="promoted"' in html
    assert "support/support-tone v2" in html and "gov" in html
    # A product owner reads the page but is offered neither button.
    assert 'data-action="promote"' not in html and 'data-action="rollback"' not in html
    assert "style=" not in html and "onclick" not in html


@pytest.mark.parametrize("username", ["admin", "gov", "eng"])
def test_engineers_administrators_and_governance_are_offered_the_buttons(world, scene, username):
    html = (
        client_for(world, username)
        .get(reverse("deployments:endpoint", args=[scene.endpoint.pk]))
        .content.decode()
    )
    assert html.count('data-action="promote"') == 1  # the live canary only
    assert html.count('data-action="rollback"') == 2  # the canary and the promoted one
    assert reverse("deployments:promote", args=[scene.canary.pk]) in html


def test_promote_is_one_click_and_audited(
    world, scene, backend, enqueued, django_capture_on_commit_callbacks
):
    url = reverse("deployments:endpoint", args=[scene.endpoint.pk])
    gov = client_for(world, "gov")
    with django_capture_on_commit_callbacks(execute=True):
        response = gov.post(reverse("deployments:promote", args=[scene.canary.pk]), {"next": url})
    assert response.status_code == 302 and response["Location"] == url
    page = gov.get(url).content.decode()
    assert f"Promotion of deployment #{scene.canary.pk} under way" in page
    assert 'data-action-pending="promote"' in page and 'data-action="rollback"' in page  # the other row
    assert ("workers.deployments.apply_action", (scene.canary.pk,)) in enqueued

    assert apply_action(scene.canary.pk) == "promoted"  # the worker
    scene.canary.refresh_from_db()
    scene.first.refresh_from_db()
    assert (scene.canary.status, scene.first.status) == (DeploymentStatus.PROMOTED, DeploymentStatus.REPLACED)
    event = AuditEvent.objects.filter(action="deployments.deployment_promoted").latest("id")
    assert event.actor_id == world.gov.pk and event.changes["replaced"] == [scene.first.pk]
    page = gov.get(url).content.decode()
    assert f'data-deployed-model="{scene.canary.deployed_model_id}" data-percent="100"' in page


def test_roll_back_is_one_click_and_puts_the_previous_split_back(world, scene, backend):
    response = client_for(world, "eng").post(reverse("deployments:rollback", args=[scene.canary.pk]))
    assert response.status_code == 302
    assert response["Location"] == reverse("deployments:detail", args=[scene.canary.pk])
    assert AuditEvent.objects.filter(action="deployments.rollback_requested").count() == 1
    apply_action(scene.canary.pk)
    scene.canary.refresh_from_db()
    scene.endpoint.refresh_from_db()
    assert scene.canary.status == DeploymentStatus.ROLLED_BACK
    assert scene.endpoint.traffic_split == {scene.first.deployed_model_id: 100}
    held = backend.endpoint(scene.endpoint.resource_name)
    assert [d["id"] for d in held["deployed_models"]] == [scene.first.deployed_model_id]


def test_a_failed_click_shows_the_provider_s_message(world, scene, backend, monkeypatch):
    def refuse(self, **kwargs):
        raise BackendError("Endpoint is being updated.")

    monkeypatch.setattr(type(backend), "set_traffic", refuse)
    client_for(world, "eng").post(reverse("deployments:promote", args=[scene.canary.pk]))
    apply_action(scene.canary.pk)
    page = (
        client_for(world, "eng").get(reverse("deployments:detail", args=[scene.canary.pk])).content.decode()
    )
    assert "Could not promote: Endpoint is being updated." in page and 'data-action="promote"' in page


@pytest.mark.parametrize(("username", "status"), [("owner", 403), ("ann1", 404), ("fin_eng", 404)])
def test_others_cannot_click_and_nothing_changes(world, scene, username, status):
    before = AuditEvent.objects.count()
    for action in ("deployments:promote", "deployments:rollback"):
        response = client_for(world, username).post(reverse(action, args=[scene.canary.pk]))
        assert response.status_code == status, (action, username)
    scene.canary.refresh_from_db()
    assert scene.canary.status == DeploymentStatus.LIVE and AuditEvent.objects.count() == before
    assert (
        client_for(world, "eng").get(reverse("deployments:promote", args=[scene.canary.pk])).status_code
        == 405
    )


def test_a_refused_click_says_why(world, scene):
    client = client_for(world, "eng")
    response = client.post(reverse("deployments:rollback", args=[scene.first.pk]), follow=True)
    assert f"already has deployment #{scene.canary.pk} live" in response.content.decode()
    scene.first.refresh_from_db()
    assert scene.first.status == DeploymentStatus.PROMOTED


def test_a_request_is_drafted_submitted_and_reviewed(world, scene, backend):
    other = endpoint_create(actor=world.eng, team=world.support, name="support-batch")
    eng = client_for(world, "eng")
    form = eng.get(reverse("deployments:new") + f"?endpoint={other.pk}").content.decode()
    assert "support/support-tone v1 (champion)" in form
    response = eng.post(
        reverse("deployments:new"),
        {
            "adapter_version": scene.v2.pk,
            "endpoint": other.pk,
            "strategy": "replace",
            "traffic_percent": "10",  # ignored: a replace takes 100 %
            "accelerator_count": "0",
            "justification": "Batch scoring with v2.",
        },
    )
    deployment = Deployment.objects.get(endpoint=other)
    assert response["Location"] == reverse("deployments:detail", args=[deployment.pk])
    assert deployment.traffic_percent == 100 and deployment.status == DeploymentStatus.DRAFT
    page = eng.get(response["Location"]).content.decode()
    assert reverse("deployments:submit", args=[deployment.pk]) in page

    eng.post(reverse("deployments:submit", args=[deployment.pk]))
    approval = ApprovalRequest.objects.get(subject_kind="deployment", object_id=deployment.pk)
    review = client_for(world, "gov").get(reverse("workflows:request", args=[approval.pk])).content.decode()
    assert "Deployment request" in review and "gs://artifacts/tone/2" in review and "Batch scoring" in review
    assert reverse("deployments:endpoint", args=[other.pk]) in review
    response = client_for(world, "gov").post(
        reverse("workflows:decide", args=[approval.pk]), {"decision": "approve", "comment": "ok"}
    )
    assert response.status_code == 302
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.APPROVED
    detail = eng.get(reverse("deployments:detail", args=[deployment.pk])).content.decode()
    assert "Approved by gov" in detail and f"Approval request #{approval.pk}" in detail


def test_invalid_requests_say_why_and_write_nothing(world, scene):
    eng = client_for(world, "eng")
    before = Deployment.objects.count()
    response = eng.post(
        reverse("deployments:new"),
        {
            "adapter_version": scene.v2.pk,
            "endpoint": scene.endpoint.pk,
            "strategy": "canary",
            "traffic_percent": "60",
            "justification": "x",
        },
    )
    assert response.status_code == 200
    assert "traffic_percent: a canary takes 1 to 50 % of the traffic." in response.content.decode()
    response = eng.post(
        reverse("deployments:new"),
        {
            "adapter_version": scene.v2.pk,
            "endpoint": scene.endpoint.pk,
            "strategy": "canary",
            "traffic_percent": "5",
            "justification": "x",
        },
    )
    assert f"already has deployment #{scene.canary.pk} live" in response.content.decode()
    assert Deployment.objects.count() == before


def test_an_endpoint_is_created_from_the_index(world, backend):
    client = client_for(world, "eng")
    response = client.post(reverse("deployments:endpoint_new"), {"team": world.support.pk, "name": "edge"})
    assert response.status_code == 302
    page = client.get(response["Location"]).content.decode()
    assert "Nothing serves on this endpoint yet." in page
    response = client.post(
        reverse("deployments:endpoint_new"), {"team": world.support.pk, "name": "edge"}, follow=True
    )
    assert "already exists in support" in response.content.decode()
    assert (
        client_for(world, "gov")
        .post(reverse("deployments:endpoint_new"), {"team": world.support.pk, "name": "x"})
        .status_code
        == 403
    )


def test_the_pages_in_spanish(world, scene):
    client = client_for(world, "eng")
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "es"
    html = client.get(reverse("deployments:endpoint", args=[scene.endpoint.pk])).content.decode()
    assert "Despliegues" in html and "Reparto del tráfico ahora" in html
    assert "Promover" in html and "Revertir" in html
