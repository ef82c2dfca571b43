"""The local runner end to end with a real worker and the real trainer (deploy/trainer, the tiny base
model on CPU): approval → the worker dispatches → the trainer runs as a subprocess → the poller registers
the adapter version → the worker mirrors it into MLflow with its metrics and lineage. And a trainer
killed from outside is reported as failed, not left running."""

import json
import os
import signal
from pathlib import Path

import pytest
from django.conf import settings
from mlflow import MlflowClient

from apps.cloud.jobs import get_job_backend
from apps.registry.models import AdapterVersion, Provider
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.models import TuningRequest, TuningStatus
from apps.tuning.services import tuning_jobs_poll, tuning_request_create, tuning_request_submit
from apps.workflows.services import approval_decision_record
from tests.factories import make_world
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

EXAMPLES = Path(settings.BASE_DIR) / "deploy" / "trainer" / "examples"


@pytest.fixture
def local_runner(settings, tmp_path, start_worker):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.JOB_BACKEND = "local"
    settings.LOCAL_JOBS_DIR = str(tmp_path / "jobs")
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = uri
    get_job_backend.cache_clear()
    worker = start_worker(
        JOB_BACKEND="local", ATALAYA_LOCAL_JOBS_DIR=str(tmp_path / "jobs"), MLFLOW_TRACKING_URI=uri
    )
    yield worker, uri
    get_job_backend.cache_clear()


def _approved_request(world, **hyperparameters):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="tiny",
        context_window=512,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")
    request = tuning_request_create(
        actor=world.eng,
        adapter=adapter,
        train_dataset_uri=str(EXAMPLES / "train.jsonl"),
        validation_dataset_uri=str(EXAMPLES / "validation.jsonl"),
        hyperparameters={"rank": 4, "alpha": 8, **hyperparameters},
        estimated_hours="0.1",
        justification="The demo adapter.",
    )
    approval = tuning_request_submit(actor=world.eng, request=request)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="go")
    return request


def _poll_until(worker, request, done, what):
    def check():
        tuning_jobs_poll(backend=get_job_backend())  # what beat's poller runs
        request.refresh_from_db()
        return done(request)

    wait_for(check, worker, timeout=180, what=what)


def test_approval_to_a_registered_version_in_mlflow(local_runner):
    worker, uri = local_runner
    world = make_world()
    request = _approved_request(world, max_steps=6)

    _poll_until(
        worker, request, lambda r: r.status in (TuningStatus.SUCCEEDED, TuningStatus.FAILED), "job finished"
    )
    assert request.status == TuningStatus.SUCCEEDED, request.job_error + request.log_tail
    assert request.job_backend == "local" and request.job_name == f"atalaya-tuning-{request.pk}"
    assert '"event": "progress"' in request.log_tail and request.progress == 1.0

    version = request.result_version
    output = Path(version.artifact_uri.removeprefix("file://"))
    assert (output / "adapter_model.safetensors").is_file() and (output / "metrics.json").is_file()
    metrics = json.loads((output / "metrics.json").read_text())
    assert version.metrics["train_loss"] == pytest.approx(metrics["train_loss"])
    assert version.metrics["validation_loss"] == pytest.approx(metrics["validation_loss"])
    assert version.lineage["tuning_request"] == request.pk and version.lineage["approved_by"] == "gov"

    wait_for(
        lambda: AdapterVersion.objects.filter(pk=version.pk, mlflow_synced_at__isnull=False).exists(),
        worker,
        timeout=120,
        what="version mirrored into MLflow",
    )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    mirrored = client.get_model_version("support.support-tone", "1")
    assert mirrored.source == version.artifact_uri
    assert mirrored.tags["atalaya.tuning_request"] == str(request.pk)
    assert client.get_run(mirrored.run_id).data.metrics["train_loss"] == pytest.approx(metrics["train_loss"])


def test_a_trainer_killed_from_outside_is_reported_failed(local_runner):
    worker, _ = local_runner
    world = make_world()
    request = _approved_request(world, max_steps=100000)
    _poll_until(worker, request, lambda r: r.status == TuningStatus.RUNNING, "job running")
    started = json.loads((Path(settings.LOCAL_JOBS_DIR) / request.job_name / "pid.json").read_text())
    os.killpg(started["pid"], signal.SIGKILL)  # the supervisor and the trainer, as an OOM kill would
    _poll_until(worker, request, lambda r: r.status == TuningStatus.FAILED, "job failed")
    assert "ended without recording a result" in request.job_error
    assert TuningRequest.objects.get(pk=request.pk).result_version is None
