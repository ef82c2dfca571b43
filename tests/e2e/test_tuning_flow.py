"""Issue 3's slice in a real browser, with a real Celery worker and beat and the real trainer: an engineer
files a tuning request, governance approves it, the engineer watches the job succeed and finds the new
adapter version in the registry."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from playwright.sync_api import Page, expect

from apps.cloud.jobs import get_job_backend
from apps.registry.models import Provider
from apps.registry.services import adapter_create, base_model_register
from tests.factories import make_world
from tests.integration import conftest as workers

PASSWORD = "demo-password"  # tests.factories.UserFactory
EXAMPLES = Path(settings.BASE_DIR) / "deploy" / "trainer" / "examples"


@pytest.fixture
def people(transactional_db):
    world = make_world()
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="tiny",
        context_window=512,
    )
    adapter_create(actor=world.eng, base_model=model, name="support-tone", description="Our tone")
    return world


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


def test_file_a_tuning_request_approve_it_and_watch_it_succeed(
    page: Page, live_server, people, worker_and_beat
):
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
    expect(job).to_contain_text("Registered as version 1.")
    job.get_by_role("link", name="Open it in the registry").click()
    version = page.locator('[data-version="1"]')
    expect(version).to_contain_text("train_loss")
    expect(version).to_contain_text("validation_loss")
    expect(version).to_contain_text(re.compile(r"tuning_request\s*\d+"))
