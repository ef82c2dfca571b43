"""Contract tests of JOB_BACKEND=vertex: the real google-cloud-aiplatform SDK, built as production builds
it (`from_settings`), against the in-repo gRPC fake of Vertex AI over TLS (tests/contract/vertex_fake.py).
Each test asserts what the fake received and what the console gets back."""

import json
import time

import grpc
import pytest
from django.core.exceptions import ImproperlyConfigured
from google.cloud import aiplatform_v1

from apps.cloud.jobs import (
    BackendError,
    BackendUnavailable,
    JobState,
    TrainingSpec,
    get_job_backend,
    get_serving_backend,
)
from apps.cloud.jobs.vertex import VertexJobBackend, VertexServingBackend, label_value, scale, split_with

PARENT = "projects/atalaya-test/locations/us-central1"


def lora_spec(key="atalaya-tuning-42", **changes):
    values = {
        "key": key,
        "display_name": "Support bot LoRA #42",
        "method": "lora",
        "base_model": "gs://atalaya-models/gemma-2b",
        "train_uri": "gs://atalaya-data/support/train.jsonl",
        "validation_uri": "gs://atalaya-data/support/validation.jsonl",
        "hyperparameters": {"rank": 8, "alpha": 16, "dropout": 0.05, "epochs": 3, "learning_rate": 0.0002},
        "machine_type": "g2-standard-12",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 1,
        "output_uri": "gs://atalaya-jobs/tuning-42",
        "labels": {"team": "Support", "Tuning-Request": "42"},
    }
    values.update(changes)
    return TrainingSpec(**values)


def gemini_spec(key="atalaya-tuning-7", **changes):
    values = {
        "key": key,
        "display_name": "Gemini support tune",
        "method": "vertex_supervised",
        "base_model": "gemini-2.5-flash",
        "train_uri": "gs://atalaya-data/support/train.jsonl",
        "validation_uri": "gs://atalaya-data/support/validation.jsonl",
        "hyperparameters": {"epochs": 4, "learning_rate_multiplier": 1.5, "rank": 8},
    }
    values.update(changes)
    return TrainingSpec(**values)


@pytest.fixture
def jobs(vertex_settings) -> VertexJobBackend:
    backend = get_job_backend()
    assert isinstance(backend, VertexJobBackend)
    return backend


@pytest.fixture
def serving(vertex_settings) -> VertexServingBackend:
    backend = get_serving_backend()
    assert isinstance(backend, VertexServingBackend)
    return backend


# -- choosing the backend -----------------------------------------------------------------------------


def test_an_unknown_job_backend_is_refused_with_the_names_it_takes(settings):
    settings.JOB_BACKEND = "sagemaker"
    get_job_backend.cache_clear()
    get_serving_backend.cache_clear()
    with pytest.raises(ImproperlyConfigured, match=r"JOB_BACKEND='sagemaker': use one of local, vertex"):
        get_job_backend()
    with pytest.raises(ImproperlyConfigured, match="use one of local, vertex"):
        get_serving_backend()


def test_vertex_without_a_project_is_a_configuration_error(vertex_settings):
    vertex_settings.VERTEX_PROJECT = ""
    vertex_settings.GOOGLE_CLOUD_PROJECT = ""
    with pytest.raises(ImproperlyConfigured, match="VERTEX_PROJECT"):
        get_job_backend()


# -- CustomJob: submit --------------------------------------------------------------------------------


def test_submit_creates_one_custom_job_with_the_worker_pool_the_trainer_and_the_labels(jobs, vertex_fake):
    status = jobs.submit(lora_spec())

    (request,) = vertex_fake.requests("CreateCustomJob")
    assert request.parent == PARENT
    job = request.custom_job
    assert job.display_name == "Support bot LoRA #42"
    (pool,) = job.job_spec.worker_pool_specs
    assert pool.replica_count == 1
    assert pool.machine_spec.machine_type == "g2-standard-12"
    assert pool.machine_spec.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    assert pool.machine_spec.accelerator_count == 1
    assert pool.container_spec.image_uri == "us-docker.pkg.dev/atalaya-test/atalaya/trainer:1.0"
    assert list(pool.container_spec.args) == [
        "--base-model", "/gcs/atalaya-models/gemma-2b",
        "--train", "/gcs/atalaya-data/support/train.jsonl",
        "--validation", "/gcs/atalaya-data/support/validation.jsonl",
        "--output-dir", "/gcs/atalaya-jobs/tuning-42/model",
        "--rank", "8", "--alpha", "16", "--dropout", "0.05", "--epochs", "3", "--learning-rate", "0.0002",
    ]  # fmt: skip
    assert job.job_spec.base_output_directory.output_uri_prefix == "gs://atalaya-jobs/tuning-42"
    assert job.job_spec.service_account == "atalaya-jobs@atalaya-test.iam.gserviceaccount.com"
    labels = dict(job.labels)
    assert labels["atalaya-managed"] == "true"
    assert labels["atalaya-key"] == "atalaya-tuning-42"
    assert labels["team"] == "support-" + labels["team"][-8:]  # lowercased, with a hash of "Support"
    assert labels["tuning-request"] == "42"

    assert status.name.startswith(f"{PARENT}/customJobs/")
    assert status.name in vertex_fake.custom_jobs
    assert status.state is JobState.QUEUED
    assert status.output_uri == "gs://atalaya-jobs/tuning-42/model"


def test_a_resubmit_with_the_same_key_adopts_the_job_instead_of_starting_a_second(jobs, vertex_fake):
    first = jobs.submit(lora_spec())
    vertex_fake.advance(first.name, "RUNNING")
    again = jobs.submit(lora_spec())
    # a re-run dispatch in another worker process (a fresh backend) adopts it as well
    get_job_backend.cache_clear()
    other = VertexJobBackend.from_settings().submit(lora_spec())

    assert vertex_fake.count("CreateCustomJob") == 1
    assert again.name == first.name == other.name
    assert again.state is JobState.RUNNING
    lookups = vertex_fake.requests("ListCustomJobs")
    assert [r.filter for r in lookups] == ['labels.atalaya-key="atalaya-tuning-42"'] * 3


def test_keys_beyond_the_label_limit_still_make_distinct_valid_labels(jobs, vertex_fake):
    long_a = "atalaya-tuning-" + "x" * 60 + "-a"
    long_b = "atalaya-tuning-" + "x" * 60 + "-b"
    a = jobs.submit(lora_spec(key=long_a))
    b = jobs.submit(lora_spec(key=long_b))

    assert a.name != b.name
    assert vertex_fake.count("CreateCustomJob") == 2  # the fake refuses labels Vertex would refuse
    values = [r.custom_job.labels["atalaya-key"] for r in vertex_fake.requests("CreateCustomJob")]
    assert all(len(v) <= 63 for v in values) and values[0] != values[1]
    assert jobs.submit(lora_spec(key=long_a)).name == a.name


# -- CustomJob: poll and cancel -----------------------------------------------------------------------


def test_poll_follows_a_job_from_queued_through_running_to_succeeded_with_its_metrics(
    jobs, vertex_fake, tmp_path
):
    output = tmp_path / "tuning-42"
    status = jobs.submit(lora_spec(output_uri=str(output)))
    assert jobs.poll([status.name])[status.name].state is JobState.QUEUED

    vertex_fake.advance(status.name, "RUNNING")
    running = jobs.poll([status.name])[status.name]
    assert running.state is JobState.RUNNING
    assert running.started_at is not None and running.ended_at is None

    # what the trainer leaves in AIP_MODEL_DIR (the output folder's model/)
    (output / "model").mkdir(parents=True)
    (output / "model" / "metrics.json").write_text(
        json.dumps({"train_loss": 0.42, "eval_loss": 0.51, "steps": 120, "note": "not a number"})
    )
    vertex_fake.advance(status.name, "SUCCEEDED")
    done = jobs.poll([status.name])[status.name]
    assert done.state is JobState.SUCCEEDED
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert done.output_uri == f"{output}/model"
    assert done.metrics == {"train_loss": 0.42, "eval_loss": 0.51, "steps": 120.0}
    assert done.error == ""


def test_a_succeeded_job_whose_metrics_cannot_be_read_still_succeeds_with_none(jobs, vertex_fake, tmp_path):
    status = jobs.submit(lora_spec(output_uri=str(tmp_path / "nothing-written")))
    vertex_fake.advance(status.name, "SUCCEEDED")
    done = jobs.poll([status.name])[status.name]
    assert done.state is JobState.SUCCEEDED
    assert done.metrics == {}


def test_a_failed_job_reports_vertex_s_message_and_an_expired_one_says_so(jobs, vertex_fake):
    failed = jobs.submit(lora_spec(key="atalaya-tuning-1"))
    expired = jobs.submit(lora_spec(key="atalaya-tuning-2"))
    vertex_fake.advance(failed.name, "RUNNING")
    vertex_fake.advance(
        failed.name, "FAILED", "The replica workerpool0-0 exited with a non-zero status of 1."
    )
    vertex_fake.advance(expired.name, "EXPIRED")

    statuses = jobs.poll([failed.name, expired.name])
    assert statuses[failed.name].state is JobState.FAILED
    assert statuses[failed.name].error == "The replica workerpool0-0 exited with a non-zero status of 1."
    assert statuses[expired.name].state is JobState.EXPIRED
    assert "expired" in statuses[expired.name].error


def test_cancel_moves_the_job_through_cancelling_to_cancelled(jobs, vertex_fake):
    status = jobs.submit(lora_spec())
    vertex_fake.advance(status.name, "RUNNING")
    jobs.cancel(status.name)

    assert [r.name for r in vertex_fake.requests("CancelCustomJob")] == [status.name]
    assert jobs.poll([status.name])[status.name].state is JobState.CANCELLING
    vertex_fake.advance(status.name, "CANCELLED")
    assert jobs.poll([status.name])[status.name].state is JobState.CANCELLED
    with pytest.raises(BackendError, match=r"Cannot cancel job .* in state JOB_STATE_CANCELLED"):
        jobs.cancel(status.name)


def test_polling_many_jobs_takes_one_list_call_per_page_not_one_call_per_job(jobs, vertex_fake):
    names = vertex_fake.seed_custom_jobs(250, state="RUNNING")  # the fake gives at most 100 per page
    vertex_fake.reset_calls()

    statuses = jobs.poll(names)
    assert len(statuses) == 250 and all(s.state is JobState.RUNNING for s in statuses.values())
    assert vertex_fake.count("ListCustomJobs") == 3
    assert vertex_fake.count("GetCustomJob") == 0
    request = vertex_fake.requests("ListCustomJobs")[0]
    assert request.filter.startswith('labels.atalaya-managed="true" AND state!="JOB_STATE_SUCCEEDED"')
    assert "job_spec.worker_pool_specs" not in request.read_mask.paths  # the read mask keeps jobs small

    # two finished since: they leave the running list and are read once each; an unknown name is absent
    vertex_fake.advance(names[3], "SUCCEEDED")
    vertex_fake.advance(names[7], "FAILED", "OOM")
    vertex_fake.reset_calls()
    unknown = f"{PARENT}/customJobs/999999"
    statuses = jobs.poll([*names, unknown])
    assert statuses[names[3]].state is JobState.SUCCEEDED
    assert statuses[names[7]].error == "OOM"
    assert unknown not in statuses and len(statuses) == 250
    assert vertex_fake.count("ListCustomJobs") == 3
    assert sorted(r.name for r in vertex_fake.requests("GetCustomJob")) == sorted(
        [names[3], names[7], unknown]
    )


# -- managed supervised tuning (Gemini) ---------------------------------------------------------------


def test_managed_tuning_creates_a_tuning_job_once_and_polls_it_to_a_tuned_model(jobs, vertex_fake):
    status = jobs.submit(gemini_spec())
    again = jobs.submit(gemini_spec())

    (request,) = vertex_fake.requests("CreateTuningJob")
    assert vertex_fake.count("CreateCustomJob") == 0
    job = request.tuning_job
    assert job.base_model == "gemini-2.5-flash"
    assert job.tuned_model_display_name == "Gemini support tune"
    spec = job.supervised_tuning_spec
    assert spec.training_dataset_uri == "gs://atalaya-data/support/train.jsonl"
    assert spec.validation_dataset_uri == "gs://atalaya-data/support/validation.jsonl"
    assert spec.hyper_parameters.epoch_count == 4
    assert spec.hyper_parameters.learning_rate_multiplier == 1.5
    assert (
        spec.hyper_parameters.adapter_size
        == aiplatform_v1.SupervisedHyperParameters.AdapterSize.ADAPTER_SIZE_EIGHT
    )
    assert dict(job.labels) == {"atalaya-managed": "true", "atalaya-key": "atalaya-tuning-7"}
    assert again.name == status.name and "/tuningJobs/" in status.name
    assert status.state is JobState.PENDING

    vertex_fake.advance(status.name, "RUNNING")
    assert jobs.poll([status.name])[status.name].state is JobState.RUNNING
    vertex_fake.advance(status.name, "SUCCEEDED")
    done = jobs.poll([status.name])[status.name]
    assert done.state is JobState.SUCCEEDED
    assert done.output_uri.startswith(f"{PARENT}/models/")


def test_managed_tuning_cancel_and_a_refused_dataset(jobs, vertex_fake):
    status = jobs.submit(gemini_spec())
    jobs.cancel(status.name)
    assert [r.name for r in vertex_fake.requests("CancelTuningJob")] == [status.name]
    assert jobs.poll([status.name])[status.name].state is JobState.CANCELLING

    with pytest.raises(BackendError, match=r"training_dataset_uri must be a Cloud Storage URI"):
        jobs.submit(gemini_spec(key="atalaya-tuning-8", train_uri="bq://atalaya.support.train"))
    with pytest.raises(BackendError, match=r"adapter size \(rank\) of \[1, 2, 4, 8, 16, 32\], not 12"):
        jobs.submit(gemini_spec(key="atalaya-tuning-9", hyperparameters={"rank": 12}))


# -- Model Registry -----------------------------------------------------------------------------------


def test_register_model_uploads_versions_with_aliases_under_a_parent_model(serving, vertex_fake):
    first = serving.register_model(
        display_name="support-lora",
        artifact_uri="gs://atalaya-jobs/tuning-42/model",
        serving_image="",
        aliases=["champion"],
        labels={"team": "support"},
    )
    second = serving.register_model(
        display_name="support-lora",
        artifact_uri="gs://atalaya-jobs/tuning-43/model",
        serving_image="us-docker.pkg.dev/atalaya-test/atalaya/serving:2.0",
        aliases=["challenger"],
        parent_model=first.name,
    )

    uploads = vertex_fake.requests("UploadModel")
    assert [u.parent_model for u in uploads] == ["", first.name]
    assert uploads[0].model.artifact_uri == "gs://atalaya-jobs/tuning-42/model"
    assert uploads[0].model.container_spec.image_uri == "us-docker.pkg.dev/atalaya-test/atalaya/serving:1.0"
    assert uploads[1].model.container_spec.image_uri == "us-docker.pkg.dev/atalaya-test/atalaya/serving:2.0"
    assert list(uploads[0].model.version_aliases) == ["champion"]
    assert dict(uploads[0].model.labels) == {"team": "support", "atalaya-managed": "true"}
    assert first.name.startswith(f"{PARENT}/models/") and second.name == first.name
    assert (first.version_id, second.version_id) == ("1", "2")
    assert second.aliases == ("challenger",)
    versions = {v.version_id: set(v.version_aliases) for v in vertex_fake.models[first.name]}
    assert versions == {"1": {"default", "champion"}, "2": {"challenger"}}


def test_moving_an_alias_takes_it_off_the_version_that_held_it(serving, vertex_fake):
    first = serving.register_model(
        display_name="m", artifact_uri="gs://a/1", serving_image="", aliases=["champion"]
    )
    second = serving.register_model(
        display_name="m",
        artifact_uri="gs://a/2",
        serving_image="",
        aliases=["challenger"],
        parent_model=first.name,
    )
    vertex_fake.reset_calls()

    serving.set_aliases(
        model=first.name, version_id=second.version_id, add=["champion"], remove=["challenger"]
    )

    versions = {v.version_id: set(v.version_aliases) for v in vertex_fake.models[first.name]}
    assert versions == {"1": {"default"}, "2": {"champion"}}
    merges = [(r.name, list(r.version_aliases)) for r in vertex_fake.requests("MergeVersionAliases")]
    assert merges == [(f"{first.name}@1", ["-champion"]), (f"{first.name}@2", ["champion", "-challenger"])]


def test_operations_that_are_not_done_at_once_are_polled_to_their_result(serving, vertex_fake):
    vertex_fake.operation_polls = 2
    model = serving.register_model(display_name="m", artifact_uri="gs://a/1", serving_image="")
    assert model.version_id == "1"
    assert vertex_fake.count("GetOperation") == 3  # two "not yet", then done


# -- endpoints ----------------------------------------------------------------------------------------


def _two_versions(serving):
    first = serving.register_model(display_name="m", artifact_uri="gs://a/1", serving_image="")
    second = serving.register_model(
        display_name="m", artifact_uri="gs://a/2", serving_image="", parent_model=first.name
    )
    return first, second


def test_a_canary_at_10_percent_splits_the_endpoint_90_10_and_a_rollback_undeploys_it(serving, vertex_fake):
    first, second = _two_versions(serving)
    live = serving.deploy(
        endpoint="support-bot", model=first.name, version_id="1", traffic_percent=100, machine_type="g2-standard-12",
        accelerator_type="NVIDIA_L4", accelerator_count=1,
    )  # fmt: skip
    (created,) = vertex_fake.requests("CreateEndpoint")
    assert created.endpoint.display_name == "support-bot"
    assert live.endpoint.startswith(f"{PARENT}/endpoints/")
    assert live.traffic_split == {live.deployed_model_id: 100}

    canary = serving.deploy(endpoint="support-bot", model=second.name, version_id="2", traffic_percent=10)
    assert vertex_fake.count("CreateEndpoint") == 1  # found by its display name
    deploy_request = vertex_fake.requests("DeployModel")[1]
    assert deploy_request.deployed_model.model == f"{first.name}@2"
    assert dict(deploy_request.traffic_split) == {"0": 10, live.deployed_model_id: 90}
    first_request = vertex_fake.requests("DeployModel")[0]
    machine = first_request.deployed_model.dedicated_resources.machine_spec
    assert (machine.machine_type, machine.accelerator_count) == ("g2-standard-12", 1)
    held = dict(vertex_fake.endpoints[live.endpoint].traffic_split)
    assert held == {live.deployed_model_id: 90, canary.deployed_model_id: 10}
    assert canary.traffic_split == held

    serving.undeploy(endpoint=live.endpoint, deployed_model_id=canary.deployed_model_id)
    endpoint = vertex_fake.endpoints[live.endpoint]
    assert dict(endpoint.traffic_split) == {live.deployed_model_id: 100}
    assert [d.id for d in endpoint.deployed_models] == [live.deployed_model_id]
    (undeploy,) = vertex_fake.requests("UndeployModel")
    assert dict(undeploy.traffic_split) == {live.deployed_model_id: 100}
    serving.undeploy(endpoint=live.endpoint, deployed_model_id=canary.deployed_model_id)  # a retry: nothing
    assert vertex_fake.count("UndeployModel") == 1


def test_promote_sets_the_whole_split_and_a_retried_deploy_adopts_the_deployment(serving, vertex_fake):
    first, second = _two_versions(serving)
    live = serving.deploy(endpoint="support-bot", model=first.name, version_id="1", traffic_percent=100)
    canary = serving.deploy(endpoint=live.endpoint, model=second.name, version_id="2", traffic_percent=10)
    again = serving.deploy(endpoint=live.endpoint, model=second.name, version_id="2", traffic_percent=10)
    assert again.deployed_model_id == canary.deployed_model_id
    assert vertex_fake.count("DeployModel") == 2

    promoted = serving.set_traffic(
        endpoint=live.endpoint, traffic_split={canary.deployed_model_id: 100, live.deployed_model_id: 0}
    )
    (update,) = vertex_fake.requests("UpdateEndpoint")
    assert list(update.update_mask.paths) == ["traffic_split"]
    assert promoted.deployed_model_id == canary.deployed_model_id
    assert dict(vertex_fake.endpoints[live.endpoint].traffic_split) == {
        canary.deployed_model_id: 100,
        live.deployed_model_id: 0,
    }
    with pytest.raises(BackendError, match="The sum of traffic_split values must be 100, not 90"):
        serving.set_traffic(endpoint=live.endpoint, traffic_split={canary.deployed_model_id: 90})


# -- failures -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("ListCustomJobs", lambda jobs, serving: jobs.submit(lora_spec())),
        ("CreateCustomJob", lambda jobs, serving: jobs.submit(lora_spec())),
        ("ListCustomJobs", lambda jobs, serving: jobs.poll([f"{PARENT}/customJobs/1"])),
        ("CreateTuningJob", lambda jobs, serving: jobs.submit(gemini_spec())),
        (
            "UploadModel",
            lambda jobs, serving: serving.register_model(
                display_name="m", artifact_uri="gs://a", serving_image=""
            ),
        ),
        (
            "GetOperation",
            lambda jobs, serving: serving.register_model(
                display_name="m", artifact_uri="gs://a", serving_image=""
            ),
        ),
    ],
)
def test_a_transient_error_is_backend_unavailable_at_once(jobs, serving, vertex_fake, method, call):
    vertex_fake.operation_polls = 1  # so an operation is polled with GetOperation
    vertex_fake.fail_next(1, grpc.StatusCode.UNAVAILABLE, method=method)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="UNAVAILABLE"):
        call(jobs, serving)
    assert time.monotonic() - started < 3
    assert not vertex_fake.custom_jobs and not vertex_fake.tuning_jobs  # nothing was created


def test_a_slow_or_unreachable_vertex_is_backend_unavailable_within_the_timeout(vertex_settings, vertex_fake):
    vertex_settings.VERTEX_TIMEOUT_SECONDS = 0.5
    jobs = VertexJobBackend.from_settings()
    vertex_fake.delay_seconds = 2
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="DEADLINE_EXCEEDED"):
        jobs.poll([f"{PARENT}/customJobs/1"])
    assert time.monotonic() - started < 1.5

    vertex_fake.delay_seconds = 0
    vertex_fake.stop()
    started = time.monotonic()
    with pytest.raises(BackendUnavailable):
        jobs.submit(lora_spec())
    assert time.monotonic() - started < 3
    jobs.clients.close()


def test_a_request_vertex_refuses_is_a_backend_error_with_its_message(jobs, serving, vertex_fake):
    with pytest.raises(BackendError, match="VERTEX_SERVING_IMAGE is not set"):
        VertexServingBackend(serving.clients).register_model(
            display_name="m", artifact_uri="gs://a", serving_image=""
        )
    with pytest.raises(
        BackendError, match="Accelerator NVIDIA_TESLA_T4 is not supported for machine type g2"
    ):
        jobs.submit(lora_spec(accelerator_type="NVIDIA_TESLA_T4"))
    with pytest.raises(BackendError, match=r"not a Vertex machine spec.*NVIDIA_H9000"):
        jobs.submit(lora_spec(accelerator_type="NVIDIA_H9000"))
    with pytest.raises(BackendError, match=r"Parent model .* not found"):
        serving.register_model(
            display_name="m", artifact_uri="gs://a", serving_image="", parent_model=f"{PARENT}/models/404"
        )
    vertex_fake.fail_next(1, grpc.StatusCode.PERMISSION_DENIED, method="CreateCustomJob")
    with pytest.raises(BackendError, match="PERMISSION_DENIED"):
        jobs.submit(lora_spec())
    assert vertex_fake.count("CreateCustomJob") == 2  # the refused T4 and the denied one; nothing created
    assert not vertex_fake.custom_jobs


# -- the arithmetic -----------------------------------------------------------------------------------


def test_label_values_and_traffic_splits():
    assert label_value("atalaya-tuning-42") == "atalaya-tuning-42"
    assert label_value("Team A") != label_value("team-a")  # changed values keep a hash of the original
    assert len(label_value("x" * 200)) == 63
    assert split_with({"a": 100}, "0", 10) == {"0": 10, "a": 90}
    assert split_with({"a": 50, "b": 50}, "0", 25) == {"0": 25, "a": 38, "b": 37}
    assert split_with({}, "0", 100) == {"0": 100}
    with pytest.raises(BackendError, match="nothing else on the endpoint takes traffic"):
        split_with({}, "0", 10)
    assert scale({"a": 90, "b": 0}, 100) == {"a": 100, "b": 0}
    assert scale({"a": 0, "b": 0}, 100) == {"a": 100, "b": 0}
