"""JOB_BACKEND=vertex: tuning jobs, Model Registry and endpoints on Vertex AI (google-cloud-aiplatform).

Jobs (`VertexJobBackend`)
- LoRA: an `aiplatform.CustomJob` with one worker pool: the machine type, accelerator type and count of
  the spec, the trainer image (`VERTEX_TRAINER_IMAGE`, built from deploy/trainer/Dockerfile) and its
  arguments. `base_output_directory` is the spec's `output_uri`; Vertex sets `AIP_MODEL_DIR` to its
  `model/` folder, and the trainer gets that same folder as `--output-dir`. Cloud Storage paths reach the
  trainer through Vertex's Cloud Storage FUSE mount (`gs://bucket/x` → `/gcs/bucket/x`), so it reads and
  writes plain files.
- Gemini: managed supervised tuning (apps/cloud/jobs/vertex_tuning.py, the supported
  GenAiTuningService API, not the deprecated `vertexai.tuning`).
- Idempotent submit: every job carries the labels `atalaya-managed=true` and `atalaya-key=<key>`; before
  creating, one list call filtered on the key label looks for a job already started with that key, and
  adopts it. A create that timed out on our side but went through at Vertex is found the same way.
- Bounded polling: one list call per page (filter: the managed label and not a terminal state; a read
  mask keeps each job small) answers for every running job at once. Only a job that left the running
  set since the last poll (it finished, or is unknown) is fetched on its own: calls grow with the jobs
  that changed, not with the jobs that run.
- A SUCCEEDED LoRA job's metrics are read from `metrics.json` in its output folder (Cloud Storage via
  google-cloud-storage, or a local path); if it cannot be read the metrics stay empty (logged).

Serving (`VertexServingBackend`): `UploadModel` (a new version under `parent_model`, with version
aliases and the serving image), `MergeVersionAliases` (an alias moves: it is first removed from the
version that holds it), `Endpoint` creation, `DeployModel` with a traffic split, `UpdateEndpoint` for
the split, `UndeployModel` giving the freed share back to the others. Deploy adopts a deployment of
the same model version already on the endpoint instead of deploying it twice.

Calls: every call has a timeout (`VERTEX_TIMEOUT_SECONDS`), and long-running operations a bounded
wait (`VERTEX_OPERATION_TIMEOUT_SECONDS`) whose status polls use our retry, never the operations
client's default (ten minutes of retries on UNAVAILABLE). The high-level SDK is used where it lets us
bound the call (`CustomJob.submit(create_request_timeout=…)`); `Model.upload` and `Endpoint.deploy`
wait on their operations with no bound we can set, so those go through the gapic clients the SDK
itself uses. Transient errors raise `BackendUnavailable`, refusals `BackendError` with Vertex's message.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.cloud import aiplatform, aiplatform_v1
from google.protobuf import field_mask_pb2

from apps.cloud.jobs.base import (
    BackendError,
    BackendUnavailable,
    DeployedModel,
    JobState,
    JobStatus,
    RegisteredModel,
    TrainingSpec,
    scale,
    split_with,
)

log = logging.getLogger(__name__)

MANAGED_LABEL = "atalaya-managed"
KEY_LABEL = "atalaya-key"
LIST_PAGE_SIZE = 1000  # Vertex may return fewer per page; the pager follows next_page_token
TERMINAL_STATE_NAMES = (
    "JOB_STATE_SUCCEEDED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_EXPIRED",
    "JOB_STATE_PARTIALLY_SUCCEEDED",
)
# What a poll reads of each job (ListCustomJobsRequest.read_mask): not the worker pool specs.
POLL_READ_MASK = ("name", "state", "error", "start_time", "end_time", "job_spec.base_output_directory")

TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.ResourceExhausted,
    api_exceptions.InternalServerError,
    api_exceptions.Aborted,
    api_exceptions.RetryError,
    auth_exceptions.TransportError,
    concurrent.futures.TimeoutError,
)
TRANSIENT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED"}

_LABEL_VALUE_INVALID = re.compile(r"[^a-z0-9_-]")
LABEL_MAX = 63


def label_value(value: str) -> str:
    """A Vertex label value: lowercase letters, digits, `_` and `-`, at most 63 characters. A value that
    had to change keeps a hash of the original, so two different keys never share a label."""
    clean = _LABEL_VALUE_INVALID.sub("-", value.lower())
    if clean == value and len(clean) <= LABEL_MAX:
        return clean
    return clean[: LABEL_MAX - 9] + "-" + hashlib.sha256(value.encode()).hexdigest()[:8]


def label_key(key: str) -> str:
    """A Vertex label key: lowercase letters, digits, `_` and `-`, starting with a letter."""
    clean = _LABEL_VALUE_INVALID.sub("-", key.lower())
    return (clean if clean[:1].isalpha() else f"k-{clean}")[:LABEL_MAX]


def job_labels(spec: TrainingSpec) -> dict[str, str]:
    labels = {label_key(k): label_value(v) for k, v in spec.labels.items()}
    labels[MANAGED_LABEL] = "true"
    labels[KEY_LABEL] = label_value(spec.key)
    return labels


def fuse_path(uri: str) -> str:
    """gs://bucket/path as the trainer sees it on Vertex (Cloud Storage FUSE at /gcs/)."""
    return "/gcs/" + uri.removeprefix("gs://") if uri.startswith("gs://") else uri


def model_dir(output_uri: str) -> str:
    """Where Vertex points AIP_MODEL_DIR for a job with this base output directory."""
    return output_uri.rstrip("/") + "/model" if output_uri else ""


def trainer_args(spec: TrainingSpec) -> list[str]:
    """The trainer's command line (deploy/trainer): data, output folder, LoRA hyperparameters."""
    hp = spec.hyperparameters
    args = ["--base-model", fuse_path(spec.base_model), "--train", fuse_path(spec.train_uri)]
    if spec.validation_uri:
        args += ["--validation", fuse_path(spec.validation_uri)]
    args += ["--output-dir", fuse_path(model_dir(spec.output_uri))]
    for name, flag in (
        ("rank", "--rank"),
        ("alpha", "--alpha"),
        ("dropout", "--dropout"),
        ("epochs", "--epochs"),
        ("learning_rate", "--learning-rate"),
    ):
        if hp.get(name) is not None:
            args += [flag, str(hp[name])]
    return args


def translate(exc: BaseException, what: str) -> Exception:
    """A Google or gRPC error as BackendUnavailable (retry later) or BackendError (Vertex's message)."""
    code = _status_name(exc)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, TRANSIENT) or code in TRANSIENT_CODES:
        return BackendUnavailable(f"Vertex AI could not {what} now ({code or type(exc).__name__}): {message}")
    return BackendError(f"Vertex AI refused to {what} ({code or type(exc).__name__}): {message}")


FAILURES = (
    api_exceptions.GoogleAPICallError,
    api_exceptions.RetryError,
    grpc.RpcError,
    auth_exceptions.GoogleAuthError,
    concurrent.futures.TimeoutError,
)


def _status_name(exc: BaseException) -> str | None:
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        status = exc.grpc_status_code
        return status.name if status is not None else None
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        try:
            return exc.code().name  # type: ignore[attr-defined]
        except Exception:  # an RpcError that is not a Call
            return None
    return None


def _when(timestamp: Any) -> datetime | None:
    """A protobuf Timestamp as a datetime (None when unset)."""
    return timestamp.ToDatetime(tzinfo=UTC) if timestamp.seconds or timestamp.nanos else None


class VertexClients:
    """Project, location, credentials and the gapic clients, shared by both backends."""

    def __init__(
        self,
        *,
        project: str,
        location: str = "us-central1",
        credentials: Any = None,
        api_endpoint: str = "",
        timeout: float = 30.0,
        operation_timeout: float = 1800.0,
        retry: bool = True,
        staging_bucket: str = "",
        service_account: str = "",
    ) -> None:
        if not project:
            raise ImproperlyConfigured("JOB_BACKEND=vertex needs VERTEX_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        self.project = project
        self.location = location
        self.credentials = credentials
        self.api_endpoint = api_endpoint or f"{location}-aiplatform.googleapis.com"
        self.timeout = timeout
        self.operation_timeout = operation_timeout
        self.staging_bucket = staging_bucket
        self.service_account = service_account
        self.parent = f"projects/{project}/locations/{location}"
        # Production: a few quick retries on UNAVAILABLE within the call's deadline; tests: none.
        self.retry: api_retry.Retry | None = (
            api_retry.Retry(
                predicate=api_retry.if_exception_type(api_exceptions.ServiceUnavailable),
                initial=0.2,
                maximum=2.0,
                multiplier=2.0,
                timeout=timeout,
            )
            if retry
            else None
        )
        # Operation status polls always carry a retry of ours (None would mean the operations client's
        # default: ten minutes of retries on UNAVAILABLE).
        self.operation_retry = self.retry or api_retry.Retry(predicate=lambda exc: False, timeout=timeout)
        self._clients: dict[type, Any] = {}
        # The high-level SDK (CustomJob) reads its configuration from aiplatform.init.
        aiplatform.init(
            project=project,
            location=location,
            credentials=credentials,
            api_endpoint=self.api_endpoint,
            staging_bucket=staging_bucket or None,
        )

    @classmethod
    def from_settings(cls, credentials: Any = None) -> VertexClients:
        if credentials is None and settings.VERTEX_ANONYMOUS_CREDENTIALS:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # only for the in-repo fake
        return cls(
            project=settings.VERTEX_PROJECT or settings.GOOGLE_CLOUD_PROJECT,
            location=settings.VERTEX_LOCATION or "us-central1",
            credentials=credentials,
            api_endpoint=settings.VERTEX_API_ENDPOINT,
            timeout=float(settings.VERTEX_TIMEOUT_SECONDS),
            operation_timeout=float(settings.VERTEX_OPERATION_TIMEOUT_SECONDS),
            retry=settings.VERTEX_RETRY,
            staging_bucket=settings.VERTEX_STAGING_BUCKET,
            service_account=settings.VERTEX_SERVICE_ACCOUNT,
        )

    def client(self, client_class: type) -> Any:
        if client_class not in self._clients:
            self._clients[client_class] = client_class(
                credentials=self.credentials, client_options=ClientOptions(api_endpoint=self.api_endpoint)
            )
        return self._clients[client_class]

    @property
    def jobs(self) -> aiplatform_v1.JobServiceClient:
        return self.client(aiplatform_v1.JobServiceClient)

    @property
    def tuning(self) -> aiplatform_v1.GenAiTuningServiceClient:
        return self.client(aiplatform_v1.GenAiTuningServiceClient)

    @property
    def models(self) -> aiplatform_v1.ModelServiceClient:
        return self.client(aiplatform_v1.ModelServiceClient)

    @property
    def endpoints(self) -> aiplatform_v1.EndpointServiceClient:
        return self.client(aiplatform_v1.EndpointServiceClient)

    def call(self, method: Callable[..., Any], request: Any, what: str) -> Any:
        try:
            return method(request=request, retry=self.retry, timeout=self.timeout)
        except FAILURES as exc:
            raise translate(exc, what) from exc

    def wait(self, method: Callable[..., Any], request: Any, what: str) -> Any:
        """Start a long-running operation and wait for its result, within bounds."""
        try:
            operation = method(request=request, retry=self.retry, timeout=self.timeout)
            return operation.result(timeout=self.operation_timeout, retry=self.operation_retry)
        except FAILURES as exc:
            raise translate(exc, what) from exc

    def pages(self, method: Callable[..., Any], request: Any, what: str) -> Iterable[Any]:
        """Each page of a list call (one call per page, each with its timeout)."""
        try:
            pager = method(request=request, retry=self.retry, timeout=self.timeout)
            yield from pager.pages
        except FAILURES as exc:
            raise translate(exc, what) from exc

    def close(self) -> None:
        for client in self._clients.values():
            client.transport.close()
        self._clients.clear()


class VertexJobBackend:
    name = "vertex"

    def __init__(self, clients: VertexClients, *, trainer_image: str = "") -> None:
        self.clients = clients
        self.trainer_image = trainer_image

    @classmethod
    def from_settings(cls) -> VertexJobBackend:
        return cls(VertexClients.from_settings(), trainer_image=settings.VERTEX_TRAINER_IMAGE)

    # -- submit ---------------------------------------------------------------------------------------

    def submit(self, spec: TrainingSpec) -> JobStatus:
        if spec.method == "vertex_supervised":
            from apps.cloud.jobs import vertex_tuning

            return vertex_tuning.submit(self.clients, spec)
        if spec.method != "lora":
            raise BackendError(f"Vertex AI runs methods lora and vertex_supervised, not {spec.method!r}")
        existing = self._find_custom_job(spec.key)
        if existing is not None:
            log.info("Vertex job %s already runs for key %s: adopted", existing.name, spec.key)
            return self._status(existing)
        return self._status(self._create_custom_job(spec))

    def _find_custom_job(self, key: str) -> Any:
        request = aiplatform_v1.ListCustomJobsRequest(
            parent=self.clients.parent,
            filter=f'labels.{KEY_LABEL}="{label_value(key)}"',
            page_size=LIST_PAGE_SIZE,
        )
        found = [
            job
            for page in self.clients.pages(self.clients.jobs.list_custom_jobs, request, "look up the job")
            for job in aiplatform_v1.ListCustomJobsResponse.pb(page).custom_jobs
        ]
        return max(found, key=lambda job: (job.create_time.seconds, job.create_time.nanos), default=None)

    def _create_custom_job(self, spec: TrainingSpec) -> Any:
        if not self.trainer_image:
            raise BackendError(
                "VERTEX_TRAINER_IMAGE is not set: Vertex AI has no trainer to run for LoRA jobs"
            )
        if not spec.output_uri:
            raise BackendError("a Vertex job needs an output_uri (gs://…) for the adapter")
        machine: dict[str, Any] = {"machine_type": spec.machine_type or "n1-standard-4"}
        if spec.accelerator_type:
            machine["accelerator_type"] = spec.accelerator_type
            machine["accelerator_count"] = spec.accelerator_count or 1
        try:
            worker_pool = aiplatform_v1.WorkerPoolSpec(
                machine_spec=aiplatform_v1.MachineSpec(**machine),
                replica_count=1,
                container_spec=aiplatform_v1.ContainerSpec(
                    image_uri=self.trainer_image, args=trainer_args(spec)
                ),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise BackendError(f"not a Vertex machine spec: {machine} ({exc})") from exc
        try:
            job = aiplatform.CustomJob(
                display_name=spec.display_name[:128] or spec.key,
                worker_pool_specs=[worker_pool],
                base_output_dir=spec.output_uri,
                project=self.clients.project,
                location=self.clients.location,
                credentials=self.clients.credentials,
                labels=job_labels(spec),
                staging_bucket=self.clients.staging_bucket or spec.output_uri,
            )
            job.submit(
                service_account=self.clients.service_account or None,
                create_request_timeout=self.clients.timeout,
            )
        except FAILURES as exc:
            raise translate(exc, "create the job") from exc
        return aiplatform_v1.CustomJob.pb(job.gca_resource)

    # -- poll -----------------------------------------------------------------------------------------

    def poll(self, names: Sequence[str]) -> dict[str, JobStatus]:
        wanted = set(names)
        tuning = {n for n in wanted if "/tuningJobs/" in n}
        custom = wanted - tuning
        out: dict[str, JobStatus] = {}
        if custom:
            running = self._list_running_custom_jobs()
            for name in custom & running.keys():
                out[name] = self._status(running[name])
            for name in sorted(custom - running.keys()):  # finished since the last poll, or unknown
                job = self._get_custom_job(name)
                if job is not None:
                    out[name] = self._status(job)
        if tuning:
            from apps.cloud.jobs import vertex_tuning

            out.update(vertex_tuning.poll(self.clients, tuning))
        return out

    def _running_filter(self) -> str:
        not_terminal = " AND ".join(f'state!="{state}"' for state in TERMINAL_STATE_NAMES)
        return f'labels.{MANAGED_LABEL}="true" AND {not_terminal}'

    def _list_running_custom_jobs(self) -> dict[str, Any]:
        request = aiplatform_v1.ListCustomJobsRequest(
            parent=self.clients.parent,
            filter=self._running_filter(),
            page_size=LIST_PAGE_SIZE,
            read_mask=field_mask_pb2.FieldMask(paths=list(POLL_READ_MASK)),
        )
        jobs: dict[str, Any] = {}
        for page in self.clients.pages(self.clients.jobs.list_custom_jobs, request, "list the jobs"):
            for job in aiplatform_v1.ListCustomJobsResponse.pb(page).custom_jobs:
                jobs[job.name] = job
        return jobs

    def _get_custom_job(self, name: str) -> Any:
        try:
            job = self.clients.call(
                self.clients.jobs.get_custom_job,
                aiplatform_v1.GetCustomJobRequest(name=name),
                "read the job",
            )
        except BackendError as exc:
            if isinstance(exc.__cause__, api_exceptions.NotFound):
                return None
            raise
        return aiplatform_v1.CustomJob.pb(job)

    def _status(self, job: Any) -> JobStatus:
        """A CustomJob (protobuf message) as a JobStatus."""
        state = JobState(job.state) if job.state in JobState._value2member_map_ else JobState.PENDING
        output = model_dir(job.job_spec.base_output_directory.output_uri_prefix)
        metrics: Mapping[str, float] = {}
        if state is JobState.SUCCEEDED and output:
            metrics = self._read_metrics(output)
        error = job.error.message if job.HasField("error") else ""
        if not error and state is JobState.EXPIRED:
            error = "The job expired before it could run."
        return JobStatus(
            name=job.name,
            state=state,
            error=error,
            started_at=_when(job.start_time),
            ended_at=_when(job.end_time),
            output_uri=output,
            metrics=metrics,
        )

    def _read_metrics(self, output_uri: str) -> Mapping[str, float]:
        """metrics.json of a finished job: numbers only; empty (and logged) when it cannot be read."""
        location = output_uri.rstrip("/") + "/metrics.json"
        try:
            if location.startswith("gs://"):
                from google.cloud import storage
                from google.cloud.storage.retry import DEFAULT_RETRY as STORAGE_RETRY

                bucket, _, path = location.removeprefix("gs://").partition("/")
                client = storage.Client(project=self.clients.project, credentials=self.clients.credentials)
                blob = client.bucket(bucket).blob(path)
                raw = blob.download_as_bytes(
                    timeout=self.clients.timeout,
                    retry=STORAGE_RETRY.with_timeout(self.clients.timeout) if self.clients.retry else None,
                )
            else:
                raw = Path(location).read_bytes()
            data = json.loads(raw)
        except Exception as exc:  # unreadable metrics never fail the job: it succeeded
            log.warning("metrics of %s not readable: %s", output_uri, exc)
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            k: float(v) for k, v in data.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }

    # -- cancel ---------------------------------------------------------------------------------------

    def cancel(self, name: str) -> None:
        if "/tuningJobs/" in name:
            from apps.cloud.jobs import vertex_tuning

            vertex_tuning.cancel(self.clients, name)
            return
        self.clients.call(
            self.clients.jobs.cancel_custom_job,
            aiplatform_v1.CancelCustomJobRequest(name=name),
            "cancel the job",
        )


class VertexServingBackend:
    name = "vertex"

    def __init__(self, clients: VertexClients, *, serving_image: str = "") -> None:
        self.clients = clients
        self.serving_image = serving_image

    @classmethod
    def from_settings(cls) -> VertexServingBackend:
        return cls(VertexClients.from_settings(), serving_image=settings.VERTEX_SERVING_IMAGE)

    # -- registry -------------------------------------------------------------------------------------

    def register_model(
        self,
        *,
        display_name: str,
        artifact_uri: str,
        serving_image: str,
        aliases: Sequence[str] = (),
        parent_model: str = "",
        labels: Mapping[str, str] | None = None,
    ) -> RegisteredModel:
        image = serving_image or self.serving_image
        if not image:
            raise BackendError("VERTEX_SERVING_IMAGE is not set and no serving image was given for the model")
        model = aiplatform_v1.Model(
            display_name=display_name[:128],
            artifact_uri=artifact_uri,
            container_spec=aiplatform_v1.ModelContainerSpec(image_uri=image),
            # A new version's aliases may be held by an older one: they move afterwards (set_aliases).
            version_aliases=[] if parent_model else list(aliases),
            labels={label_key(k): label_value(v) for k, v in (labels or {}).items()}
            | {MANAGED_LABEL: "true"},
        )
        request = aiplatform_v1.UploadModelRequest(
            parent=self.clients.parent,
            parent_model=parent_model,
            model=model,
            service_account=self.clients.service_account,
        )
        response = self.clients.wait(self.clients.models.upload_model, request, "upload the model")
        if parent_model and aliases:
            self.set_aliases(model=response.model, version_id=response.model_version_id, add=aliases)
        return RegisteredModel(
            name=response.model, version_id=response.model_version_id, aliases=tuple(aliases)
        )

    def set_aliases(
        self, *, model: str, version_id: str, add: Sequence[str], remove: Sequence[str] = ()
    ) -> None:
        """Add and remove version aliases; an alias held by another version moves to this one."""
        if add:
            request = aiplatform_v1.ListModelVersionsRequest(
                name=model,
                page_size=LIST_PAGE_SIZE,
                read_mask=field_mask_pb2.FieldMask(paths=["version_id", "version_aliases"]),
            )
            for page in self.clients.pages(self.clients.models.list_model_versions, request, "list versions"):
                for version in aiplatform_v1.ListModelVersionsResponse.pb(page).models:
                    taken = [a for a in version.version_aliases if a in add]
                    if version.version_id != version_id and taken:
                        self._merge(model, version.version_id, [f"-{a}" for a in taken])
        changes = [*add, *(f"-{a}" for a in remove if a not in add)]
        if changes:
            self._merge(model, version_id, changes)

    def _merge(self, model: str, version_id: str, aliases: list[str]) -> None:
        self.clients.call(
            self.clients.models.merge_version_aliases,
            aiplatform_v1.MergeVersionAliasesRequest(name=f"{model}@{version_id}", version_aliases=aliases),
            "change the version aliases",
        )

    # -- endpoints ------------------------------------------------------------------------------------

    def _endpoint(self, endpoint: str) -> Any:
        """The endpoint by resource name, or by display name (created when there is none)."""
        if endpoint.startswith("projects/"):
            return self._get_endpoint(endpoint)
        request = aiplatform_v1.ListEndpointsRequest(
            parent=self.clients.parent, filter=f'display_name="{endpoint}"', page_size=10
        )
        for page in self.clients.pages(self.clients.endpoints.list_endpoints, request, "find the endpoint"):
            for found in aiplatform_v1.ListEndpointsResponse.pb(page).endpoints:
                return found
        created = self.clients.wait(
            self.clients.endpoints.create_endpoint,
            aiplatform_v1.CreateEndpointRequest(
                parent=self.clients.parent,
                endpoint=aiplatform_v1.Endpoint(display_name=endpoint, labels={MANAGED_LABEL: "true"}),
            ),
            "create the endpoint",
        )
        return aiplatform_v1.Endpoint.pb(created)

    def _get_endpoint(self, name: str) -> Any:
        found = self.clients.call(
            self.clients.endpoints.get_endpoint,
            aiplatform_v1.GetEndpointRequest(name=name),
            "read the endpoint",
        )
        return aiplatform_v1.Endpoint.pb(found)

    def deploy(
        self,
        *,
        endpoint: str,
        model: str,
        version_id: str,
        traffic_percent: int,
        machine_type: str = "",
        accelerator_type: str = "",
        accelerator_count: int = 0,
    ) -> DeployedModel:
        current = self._endpoint(endpoint)
        for deployed in current.deployed_models:  # already there (a retried deploy): adopt it
            if deployed.model.split("@")[0] == model and deployed.model_version_id == version_id:
                if current.traffic_split.get(deployed.id, 0) != traffic_percent:
                    split = split_with(dict(current.traffic_split), deployed.id, traffic_percent)
                    return self._update_split(current.name, split, deployed.id)
                return DeployedModel(current.name, deployed.id, dict(current.traffic_split))
        deployed_model = aiplatform_v1.DeployedModel(
            model=f"{model}@{version_id}", display_name=model.rsplit("/", 1)[-1]
        )
        if machine_type:
            machine: dict[str, Any] = {"machine_type": machine_type}
            if accelerator_type:
                machine |= {"accelerator_type": accelerator_type, "accelerator_count": accelerator_count or 1}
            try:
                deployed_model.dedicated_resources = aiplatform_v1.DedicatedResources(
                    machine_spec=aiplatform_v1.MachineSpec(**machine),
                    min_replica_count=1,
                    max_replica_count=1,
                )
            except (KeyError, ValueError, TypeError) as exc:
                raise BackendError(f"not a Vertex machine spec: {machine} ({exc})") from exc
        else:
            deployed_model.automatic_resources = aiplatform_v1.AutomaticResources(
                min_replica_count=1, max_replica_count=1
            )
        split = split_with(dict(current.traffic_split), "0", traffic_percent)  # "0": the new deployment
        response = self.clients.wait(
            self.clients.endpoints.deploy_model,
            aiplatform_v1.DeployModelRequest(
                endpoint=current.name, deployed_model=deployed_model, traffic_split=split
            ),
            "deploy the model",
        )
        after = self._get_endpoint(current.name)
        return DeployedModel(current.name, response.deployed_model.id, dict(after.traffic_split))

    def set_traffic(self, *, endpoint: str, traffic_split: Mapping[str, int]) -> DeployedModel:
        """Set the endpoint's whole split (the deployed model id reported is the one with the most)."""
        return self._update_split(endpoint, traffic_split, "")

    def _update_split(self, endpoint: str, traffic_split: Mapping[str, int], focus: str) -> DeployedModel:
        updated = self.clients.call(
            self.clients.endpoints.update_endpoint,
            aiplatform_v1.UpdateEndpointRequest(
                endpoint=aiplatform_v1.Endpoint(name=endpoint, traffic_split=dict(traffic_split)),
                update_mask=field_mask_pb2.FieldMask(paths=["traffic_split"]),
            ),
            "change the traffic split",
        )
        split = dict(updated.traffic_split)
        return DeployedModel(updated.name, focus or max(split, key=lambda k: split[k], default=""), split)

    def undeploy(self, *, endpoint: str, deployed_model_id: str) -> None:
        """Take a deployment off the endpoint; its share goes back to the others (in proportion)."""
        current = self._get_endpoint(endpoint)
        if not any(d.id == deployed_model_id for d in current.deployed_models):
            return  # already gone (a retried undeploy)
        remaining = [d.id for d in current.deployed_models if d.id != deployed_model_id]
        split = scale({k: current.traffic_split.get(k, 0) for k in remaining}, 100)
        self.clients.wait(
            self.clients.endpoints.undeploy_model,
            aiplatform_v1.UndeployModelRequest(
                endpoint=endpoint, deployed_model_id=deployed_model_id, traffic_split=split
            ),
            "undeploy the model",
        )
