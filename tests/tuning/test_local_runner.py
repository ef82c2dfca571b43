"""The local runner (JOB_BACKEND=local) on its own: the job folder, adoption of a job already started
with the key, datasets only from the allowed folders, failures and cancellation. The trainer here is a
stand-in command line (the real trainer runs in tests/integration/test_tuning_local.py)."""

import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from apps.cloud.jobs.base import BackendError, JobState, TrainingSpec
from apps.cloud.jobs.local import LocalJobBackend

EXAMPLES = "deploy/trainer/examples/train.jsonl"


def spec(key="atalaya-tuning-1", **changes):
    values = {"key": key, "display_name": "t", "method": "lora", "base_model": "tiny", "train_uri": EXAMPLES}
    values.update(changes)
    return TrainingSpec(**values)


def backend(tmp_path, code: str) -> LocalJobBackend:
    """A runner whose 'trainer' is a line of Python (it gets the trainer's arguments, and ignores them)."""
    return LocalJobBackend(tmp_path / "jobs", [sys.executable, "-c", code])


def wait(runner, name, states, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status = runner.poll([name])[name]
        if status.state in states:
            return status
        time.sleep(0.1)
    raise AssertionError(f"{name} still {status.state.name}")


def test_a_job_runs_in_its_folder_and_succeeds_with_its_metrics(tmp_path):
    code = (
        "import json, pathlib, sys; out = pathlib.Path(sys.argv[sys.argv.index('--output-dir') + 1]);"
        " out.mkdir(parents=True); (out / 'metrics.json').write_text(json.dumps({'train_loss': 0.5, 'steps': 3}));"
        " print(json.dumps({'event': 'progress', 'step': 3, 'total': 3, 'loss': 0.5}))"
    )
    runner = backend(tmp_path, code)
    first = runner.submit(spec())
    assert first.state == JobState.QUEUED and first.name == "atalaya-tuning-1"
    done = wait(runner, first.name, {JobState.SUCCEEDED, JobState.FAILED})
    assert done.state == JobState.SUCCEEDED, done.error
    assert done.metrics == {"train_loss": 0.5, "steps": 3.0} and done.progress == 1.0
    assert done.output_uri == (tmp_path / "jobs" / "atalaya-tuning-1" / "output").resolve().as_uri()
    argv = (tmp_path / "jobs" / "atalaya-tuning-1" / "job.json").read_text()
    assert str(Path(settings.BASE_DIR) / EXAMPLES) in argv  # a relative path, from the project


def test_the_same_key_twice_starts_one_job(tmp_path):
    runner = backend(tmp_path, "import time; time.sleep(1)")
    runner.submit(spec())
    job = (tmp_path / "jobs" / "atalaya-tuning-1" / "job.json").read_text()
    again = runner.submit(spec(hyperparameters={"rank": 64}))  # a retry: the first job is adopted
    assert again.name == "atalaya-tuning-1"
    assert (tmp_path / "jobs" / "atalaya-tuning-1" / "job.json").read_text() == job


@pytest.mark.parametrize(
    ("train_uri", "message"),
    [
        ("/etc/passwd", "reads datasets only under"),
        ("deploy/trainer/examples/../../../manage.py", "reads datasets only under"),
        ("gs://bucket/train.jsonl", "reads files on this machine"),
        ("deploy/trainer/examples/missing.jsonl", "no file at"),
    ],
)
def test_datasets_come_only_from_the_allowed_folders(tmp_path, train_uri, message):
    with pytest.raises(BackendError, match=message):
        backend(tmp_path, "pass").submit(spec(train_uri=train_uri))
    assert not (tmp_path / "jobs" / "atalaya-tuning-1" / "job.json").exists()


def test_a_failing_trainer_reports_its_exit_code_and_stderr(tmp_path):
    runner = backend(
        tmp_path, "import sys; print('train dataset line 3: not valid JSON', file=sys.stderr); sys.exit(2)"
    )
    runner.submit(spec())
    failed = wait(runner, "atalaya-tuning-1", {JobState.FAILED, JobState.SUCCEEDED})
    assert failed.state == JobState.FAILED
    assert "exited with code 2" in failed.error and "line 3: not valid JSON" in failed.error


def test_a_running_job_is_cancelled(tmp_path):
    runner = backend(tmp_path, "import time; time.sleep(60)")
    runner.submit(spec())
    wait(runner, "atalaya-tuning-1", {JobState.RUNNING})
    runner.cancel("atalaya-tuning-1")
    assert wait(runner, "atalaya-tuning-1", {JobState.CANCELLED, JobState.FAILED}).state == JobState.CANCELLED


def test_managed_tuning_needs_vertex(tmp_path):
    with pytest.raises(BackendError, match="JOB_BACKEND=vertex"):
        backend(tmp_path, "pass").submit(spec(method="vertex_supervised"))


@pytest.mark.django_db
def test_the_poller_registers_versions_trained_on_project_paths_and_survives_a_bad_request(
    world, tmp_path, settings
):
    """A job on `deploy/trainer/examples/…` (a path in the project) succeeds: its version records the file's
    URI. A request whose result cannot be recorded is logged and left for later, and does not stop the
    poller from recording the others."""
    from apps.registry.services import adapter_create, base_model_register
    from apps.tuning.models import TuningRequest, TuningStatus
    from apps.tuning.services import (
        tuning_job_dispatch,
        tuning_jobs_poll,
        tuning_request_create,
        tuning_request_submit,
    )
    from apps.workflows.services import approval_decision_record

    code = "import json, pathlib, sys; out = pathlib.Path(sys.argv[sys.argv.index('--output-dir') + 1]); out.mkdir(parents=True); (out / 'metrics.json').write_text('{\"train_loss\": 0.5}')"
    runner = backend(tmp_path, code)
    model = base_model_register(
        actor=world.eng, team=world.support, provider="hugging_face", model_id="tiny", context_window=512
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="tone")
    requests = []
    for _ in range(2):
        request = tuning_request_create(
            actor=world.eng, adapter=adapter, train_dataset_uri=EXAMPLES, estimated_hours=1, justification="j"
        )
        approval = tuning_request_submit(actor=world.eng, request=request)
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")
        requests.append(tuning_job_dispatch(request_id=request.pk, backend=runner))
    for request in requests:
        wait(runner, request.job_name, {JobState.SUCCEEDED})
    # The first one's dataset became unusable for the registry since (as an old request's could be).
    TuningRequest.objects.filter(pk=requests[0].pk).update(train_dataset_uri="ftp://old/train.jsonl")

    assert tuning_jobs_poll(backend=runner) == {"polled": 2, "changed": 1, "failed": 1}
    bad, good = (TuningRequest.objects.get(pk=r.pk) for r in requests)
    assert bad.status == TuningStatus.QUEUED and bad.result_version is None  # tried again next cycle
    assert good.status == TuningStatus.SUCCEEDED
    assert good.result_version.dataset_uri == (Path(settings.BASE_DIR) / EXAMPLES).resolve().as_uri()
    assert good.result_version.lineage["dataset"] == EXAMPLES
