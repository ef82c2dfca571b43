"""Issue 3's slice in a real browser, with a real Celery worker and beat and the real trainer: an engineer
files a tuning request, governance approves it, the engineer watches the job succeed and finds the new
adapter version in the registry, deploys it as a 10 % canary beside the version in production (approved by
governance, deployed by the worker), and rolls it back."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from apps.cloud.jobs import get_job_backend, get_serving_backend
from apps.registry.models import Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.tuning.deployments import (
    deployment_action_apply,
    deployment_create,
    deployment_deploy,
    deployment_promote,
    deployment_submit,
    endpoint_create,
)
from apps.workflows.services import approval_decision_record
from tests.factories import make_world
from tests.integration import conftest as workers

PASSWORD = "demo-password"  # tests.factories.UserFactory
EXAMPLES = Path(settings.BASE_DIR) / "deploy" / "trainer" / "examples"


@pytest.fixture
def people(transactional_db, tmp_path, settings):
    """support/support-tone v1 (trained earlier, registered by hand) serves all the traffic of the
    endpoint support-chat, on the local serving backend."""
    settings.LOCAL_ENDPOINTS_DIR = str(tmp_path / "endpoints")
    get_serving_backend.cache_clear()
    world = make_world()
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="tiny",
        context_window=512,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone", description="Our tone")
    v1 = adapter_version_register(
        actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/support-tone/1"
    )
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-chat")
    first = deployment_create(
        actor=world.eng,
        endpoint=endpoint,
        strategy="replace",
        adapter_version=v1,
        justification="The first one.",
    )
    approval = deployment_submit(actor=world.eng, deployment=first)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")
    deployment_deploy(deployment_id=first.pk, backend=get_serving_backend())
    deployment_promote(actor=world.eng, deployment=first)
    deployment_action_apply(deployment_id=first.pk, backend=get_serving_backend())
    yield world
    get_serving_backend.cache_clear()


@pytest.fixture
def worker_and_beat(people, tmp_path, settings):
    """A worker with an embedded beat polling jobs every second, on the live server's database."""
    import os

    jobs = tmp_path / "jobs"
    settings.LOCAL_JOBS_DIR = str(jobs)
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    get_job_backend.cache_clear()
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="console.settings.test",
        DATABASE_URL=workers.test_database_url(),
        JOB_BACKEND="local",
        ATALAYA_LOCAL_JOBS_DIR=str(jobs),
        ATALAYA_LOCAL_ENDPOINTS_DIR=settings.LOCAL_ENDPOINTS_DIR,
        ATALAYA_TUNING_POLL_SECONDS="1",
        MLFLOW_TRACKING_URI=settings.MLFLOW_TRACKING_URI,
        ATALAYA_VAR_DIR=str(tmp_path / "var"),
    )
    worker = workers.Worker(tmp_path, env, "solo", 1, "tuning-e2e", beat=True)
    yield worker
    worker.stop()
    get_job_backend.cache_clear()


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()


def reload_until(
    page: Page, locator, value: str, attribute: str = "data-status", seconds: float = 90
) -> None:
    """Pages without a live panel: reload until the worker has done its part."""
    import time

    deadline = time.monotonic() + seconds
    while locator.get_attribute(attribute) != value and time.monotonic() < deadline:
        page.wait_for_timeout(500)
        page.reload()
    expect(locator).to_have_attribute(attribute, value)


def test_tune_approve_succeed_deploy_a_canary_and_roll_back(page: Page, live_server, people, worker_and_beat):
    base = live_server.url

    # The engineer files the request from the adapter's page.
    sign_in(page, base, "eng")
    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="support/support-tone").click()
    page.get_by_role("link", name="Request tuning").click()
    page.get_by_label("Training dataset").fill(str(EXAMPLES / "train.jsonl"))
    page.get_by_label("Validation dataset").fill(str(EXAMPLES / "validation.jsonl"))
    page.get_by_label("LoRA rank").fill("4")
    page.get_by_label("Epochs").fill("2")
    page.get_by_label("Estimated hours").fill("0.1")
    page.get_by_label("Justification").fill("Answers should sound like our support team.")
    page.get_by_role("button", name="Save and send for approval").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Pending approval")
    expect(page.locator("#tuning-job")).to_contain_text("Nothing runs until governance approves")
    request_url = page.url
    sign_out(page)

    # Governance approves it from the review queue.
    sign_in(page, base, "gov")
    page.get_by_role("link", name=re.compile("^Reviews")).click()
    page.get_by_role("link", name=re.compile(r"^Tune support.support-tone")).click()
    expect(page.get_by_role("heading", name="Tuning request")).to_be_visible()
    page.locator("#decision-form textarea").fill("Small and cheap: go.")
    page.get_by_role("button", name="Approve").click()
    sign_out(page)

    # The engineer watches the job on the request's page: it refreshes itself until the job has ended.
    sign_in(page, base, "eng")
    page.goto(request_url)
    job = page.locator("#tuning-job")
    expect(job).to_have_attribute("data-status", "succeeded", timeout=150_000)
    expect(job).to_contain_text("Registered as version 2.")
    job.get_by_role("link", name="Open it in the registry").click()
    version = page.locator('[data-version="2"]')
    expect(version).to_contain_text("train_loss")
    expect(version).to_contain_text("validation_loss")
    expect(version).to_contain_text(re.compile(r"tuning_request\s*\d+"))

    # The engineer asks for a 10 % canary of the new version beside v1 on support-chat.
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of promote and roll back
    page.get_by_role("link", name="Models").click()
    page.get_by_role("link", name="Deployments").click()
    page.get_by_role("link", name="Request a deployment").click()
    page.get_by_label("Adapter version").select_option(label="support/support-tone v2")
    page.get_by_label("Strategy").select_option("canary")
    page.get_by_label("Traffic share (%)").fill("10")
    page.get_by_label("Justification").fill("Try the tuned tone on a tenth of the traffic.")
    page.get_by_role("button", name="Draft the request").click()
    page.get_by_role("button", name="Submit for approval").click()
    canary_url = page.url
    sign_out(page)

    sign_in(page, base, "gov")
    page.get_by_role("link", name=re.compile("^Reviews")).click()
    page.get_by_role("link", name=re.compile(r"support-tone v2")).click()
    page.get_by_role("button", name="Approve").click()
    sign_out(page)

    # The worker deploys it: 90 / 10 on the endpoint.
    sign_in(page, base, "eng")
    page.goto(canary_url)
    reload_until(page, page.locator("h1 [data-status]"), "live")
    page.locator("main").get_by_role("link", name="support-chat").first.click()
    shares = page.locator("tr[data-percent]")
    expect(shares).to_have_count(2)
    assert sorted(int(row.get_attribute("data-percent")) for row in shares.all()) == [10, 90]

    # Roll back: v1 takes all the traffic again and the canary's model is undeployed.
    page.locator("tr[data-status=live] [data-action=rollback]").click()
    reload_until(page, page.locator("tr[data-deployment]").first, "rolled_back")
    expect(shares).to_have_count(1)
    expect(shares.first).to_have_attribute("data-percent", "100")
