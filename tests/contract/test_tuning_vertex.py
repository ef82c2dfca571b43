"""A tuning request end to end on JOB_BACKEND=vertex, against the in-repo Vertex fake through the real SDK:
approval → one CustomJob (also when the dispatch runs twice, or after a worker died right after its call
went out) → the poller follows QUEUED → RUNNING → SUCCEEDED and registers the adapter version with its
lineage; FAILED and EXPIRED keep Vertex's message; a running job is cancelled."""

from decimal import Decimal

import pytest

from apps.cloud.jobs import get_job_backend
from apps.registry.models import Provider
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.models import TuningRequest, TuningStatus
from apps.tuning.services import (
    job_key,
    training_spec,
    tuning_job_cancel,
    tuning_job_dispatch,
    tuning_jobs_poll,
    tuning_request_cancel,
    tuning_request_create,
    tuning_request_submit,
)
from apps.workflows.services import approval_decision_record


@pytest.fixture
def tuning_settings(vertex_settings):
    vertex_settings.TUNING_ARTIFACTS_URI = "gs://atalaya-test-artifacts/tuning"
    return vertex_settings


@pytest.fixture
def approved(world, tuning_settings):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")
    request = tuning_request_create(
        actor=world.eng,
        adapter=adapter,
        train_dataset_uri="gs://atalaya-data/support/train.jsonl",
        hyperparameters={"rank": 16, "epochs": 2},
        machine_type="g2-standard-12",
        accelerator_type="NVIDIA_L4",
        accelerator_count=1,
        estimated_hours=Decimal("2"),
        justification="Tone drift.",
    )
    approval = tuning_request_submit(actor=world.eng, request=request)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="go")
    request.refresh_from_db()
    assert request.status == TuningStatus.APPROVED
    return request


def _dispatch(request):
    return tuning_job_dispatch(request_id=request.pk, backend=get_job_backend())


def test_approval_submits_one_custom_job_with_the_requested_hardware_and_arguments(approved, vertex_fake):
    request = _dispatch(approved)
    assert request.status == TuningStatus.QUEUED and request.job_name.startswith("projects/atalaya-test/")
    (create,) = vertex_fake.requests("CreateCustomJob")
    pool = create.custom_job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "g2-standard-12"
    assert pool.machine_spec.accelerator_count == 1
    args = list(pool.container_spec.args)
    assert (
        args[args.index("--rank") + 1] == "16"
        and args[args.index("--train") + 1] == "/gcs/atalaya-data/support/train.jsonl"
    )
    assert create.custom_job.labels["atalaya-key"] == f"atalaya-tuning-{approved.pk}"

    _dispatch(approved)  # the task running twice
    assert vertex_fake.count("CreateCustomJob") == 1


def test_a_worker_killed_right_after_its_call_went_out_submits_nothing_twice(approved, vertex_fake):
    """The key is committed before the call; the job was created, but the answer never recorded."""
    TuningRequest.objects.filter(pk=approved.pk).update(job_key=job_key(approved), job_backend="vertex")
    approved.refresh_from_db()
    lost = get_job_backend().submit(training_spec(approved))  # the call that went out before the crash
    assert TuningRequest.objects.get(pk=approved.pk).job_name == ""

    request = _dispatch(approved)  # the retry
    assert vertex_fake.count("CreateCustomJob") == 1
    assert request.job_name == lost.name


def test_the_poller_follows_the_job_and_registers_the_version_with_its_lineage(approved, vertex_fake):
    request = _dispatch(approved)
    vertex_fake.advance(request.job_name, "RUNNING")
    assert tuning_jobs_poll(backend=get_job_backend()) == {"polled": 1, "changed": 1}
    request.refresh_from_db()
    assert request.status == TuningStatus.RUNNING and request.started_at is not None

    vertex_fake.advance(request.job_name, "SUCCEEDED")
    tuning_jobs_poll(backend=get_job_backend())
    request.refresh_from_db()
    assert request.status == TuningStatus.SUCCEEDED
    version = request.result_version
    assert version.number == 1 and version.adapter == approved.adapter
    assert version.artifact_uri.startswith(f"gs://atalaya-test-artifacts/tuning/atalaya-tuning-{approved.pk}")
    assert version.lineage == {
        "dataset": "gs://atalaya-data/support/train.jsonl",
        "tuning_request": approved.pk,
        "job": request.job_name,
        "backend": "vertex",
        "requested_by": "eng",
        "approved_by": "gov",
    }
    assert version.hyperparameters["rank"] == 16

    vertex_fake.reset_calls()
    assert tuning_jobs_poll(backend=get_job_backend()) == {"polled": 0, "changed": 0}
    assert vertex_fake.calls == []  # nothing left to ask about


@pytest.mark.parametrize(
    ("state", "message"),
    [("FAILED", "Replica workerpool0-0 exited with a non-zero status of 1."), ("EXPIRED", "")],
)
def test_failed_and_expired_jobs_show_why(approved, vertex_fake, state, message):
    """Vertex's message when it gives one; the backend's own words for an expiry that has none."""
    request = _dispatch(approved)
    vertex_fake.advance(request.job_name, state, message)
    tuning_jobs_poll(backend=get_job_backend())
    request.refresh_from_db()
    assert request.status == TuningStatus.FAILED and request.result_version is None
    assert request.job_error == (message or "The job expired before it could run.")


def test_a_running_job_is_cancelled(world, approved, vertex_fake):
    request = _dispatch(approved)
    vertex_fake.advance(request.job_name, "RUNNING")
    tuning_jobs_poll(backend=get_job_backend())
    request = tuning_request_cancel(actor=world.eng, request=request)
    assert request.status == TuningStatus.RUNNING and request.cancel_requested_at is not None
    tuning_job_cancel(request_id=request.pk, backend=get_job_backend())  # the task
    assert [r.name for r in vertex_fake.requests("CancelCustomJob")] == [request.job_name]
    vertex_fake.advance(request.job_name, "CANCELLED")
    tuning_jobs_poll(backend=get_job_backend())
    request.refresh_from_db()
    assert request.status == TuningStatus.CANCELLED and request.ended_at is not None


def test_a_job_vertex_refuses_fails_the_request_with_vertexs_message(approved, vertex_fake, tuning_settings):
    tuning_settings.TUNING_ARTIFACTS_URI = ""
    get_job_backend.cache_clear()
    request = _dispatch(approved)
    assert request.status == TuningStatus.FAILED
    assert "needs an output_uri" in request.job_error
    assert vertex_fake.count("CreateCustomJob") == 0
