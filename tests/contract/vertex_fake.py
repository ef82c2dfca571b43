"""An in-repo fake of Vertex AI's gRPC services, for the real google-cloud-aiplatform client.

It serves, with generic handlers (requests read with the protobuf classes behind the SDK's proto-plus
types, responses written as protobuf), over TLS with the test certificate of tests/contract/tls.py:

- google.cloud.aiplatform.v1.JobService: CreateCustomJob, GetCustomJob, ListCustomJobs (the list
  filter: `labels.k="v"`, `labels.k:*`, `state=`/`!=`, `display_name=`/`!=` with AND, OR, NOT and
  parentheses; pages of at most `max_page_size`; `read_mask`), CancelCustomJob;
- google.cloud.aiplatform.v1.GenAiTuningService: CreateTuningJob, GetTuningJob, ListTuningJobs,
  CancelTuningJob;
- google.cloud.aiplatform.v1.ModelService: UploadModel (an operation), GetModel (`@version` or
  `@alias`), MergeVersionAliases, ListModelVersions;
- google.cloud.aiplatform.v1.EndpointService: CreateEndpoint (an operation), GetEndpoint, ListEndpoints
  (display_name filter), DeployModel and UndeployModel (operations), UpdateEndpoint (traffic split);
- google.longrunning.Operations: GetOperation, WaitOperation;
- google.cloud.aiplatform.v1.PredictionService: GenerateContent (Gemini on a publisher model or an
  endpoint: the answer is `generate_answers[last user text]`, `generate_responder(request)` or "echo:
  <last user text>"; tokens are words, `max_output_tokens` cuts the answer (finish reason MAX_TOKENS),
  `thoughts_tokens` adds thinking tokens), EmbedContent (deterministic vectors, `embedding_for(text)`).

What it checks, as Vertex does: resource names and parents; a worker pool needs an image and a machine
type, and accelerators a type; label keys and values (lowercase, digits, `_`, `-`, at most 63
characters, keys starting with a letter); version aliases unique within a model and well formed;
traffic splits that sum to 100 over deployed models (`"0"` naming the model being deployed); a
deployment that still has traffic cannot be undeployed; a finished job cannot be cancelled.

Jobs start QUEUED (tuning jobs PENDING) and move only when a test says so (`advance`): RUNNING,
SUCCEEDED, FAILED with a message, EXPIRED; a cancel moves a job to CANCELLING, and `advance` to
CANCELLED. Operations are done at once unless `operation_polls` asks for that many unfinished
GetOperation answers first. `fail_next(n)` makes the next n calls (of one method, when named) fail
with UNAVAILABLE or another code (with a `google.rpc.RetryInfo` delay when `retry_delay` is given, as
Vertex sends with RESOURCE_EXHAUSTED), `delay_seconds` answers late; every call is recorded (`calls`,
`requests(method)`, `count(method)`) so a test asserts what was sent.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud import aiplatform_v1 as v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2, field_mask_pb2, timestamp_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from tests.contract.tls import LocalhostTls

JobState = v1.JobState
TERMINAL = {
    JobState.JOB_STATE_SUCCEEDED,
    JobState.JOB_STATE_FAILED,
    JobState.JOB_STATE_CANCELLED,
    JobState.JOB_STATE_EXPIRED,
    JobState.JOB_STATE_PARTIALLY_SUCCEEDED,
}
_LABEL = re.compile(r"[a-z0-9_-]{0,63}")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_ALIAS = re.compile(r"[a-z][a-zA-Z0-9-]{0,126}[a-z0-9-]")
_PARENT = re.compile(r"projects/[^/]+/locations/[^/]+")
_PUBLISHER_MODEL = re.compile(r"projects/[^/]+/locations/[^/]+/publishers/google/models/(?P<model>[^/]+)")
_ENDPOINT = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")
EMBEDDING_DIMENSIONS = 8
FAILURE_MESSAGES = {
    grpc.StatusCode.RESOURCE_EXHAUSTED: (
        "Resource exhausted. Please try again later. Please refer to "
        "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."
    ),
}


def embedding_for(text: str) -> list[float]:
    """The fake's embedding of a text: 8 floats from its SHA-256, the same every time."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:EMBEDDING_DIMENSIONS]]


def _words(text: str) -> int:
    return len(text.split())


class Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Call:
    method: str  # "CreateCustomJob", "ListCustomJobs", …
    request: Any  # the protobuf request
    status: str = "OK"


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


# -- the list filter (AIP-160, the part Vertex documents for jobs) ------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<paren>[()])|(?P<word>AND\b|OR\b|NOT\b)|"""
    r"""(?P<field>[A-Za-z_][\w.-]*)\s*(?P<op>!=|<=|>=|=|<|>|:)\s*(?P<value>"[^"]*"|[^\s()]+))"""
)


def compile_filter(text: str) -> Callable[[Any], bool]:
    """A predicate over a job, endpoint or model protobuf; Abort(INVALID_ARGUMENT) when malformed."""
    tokens: list[tuple[str, Any]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unable to parse filter at {text[pos:]!r}.")
        pos = match.end()
        if match.group("paren"):
            tokens.append((match.group("paren"), None))
        elif match.group("word"):
            tokens.append((match.group("word"), None))
        else:
            value = match.group("value")
            tokens.append(("cmp", (match.group("field"), match.group("op"), value.strip('"'))))
    if not tokens:
        return lambda item: True
    at = 0

    def peek() -> str | None:
        return tokens[at][0] if at < len(tokens) else None

    def take() -> tuple[str, Any]:
        nonlocal at
        at += 1
        return tokens[at - 1]

    def expr() -> Callable[[Any], bool]:
        left = term()
        while peek() == "OR":
            take()
            right, previous = term(), left
            left = lambda item, a=previous, b=right: a(item) or b(item)  # noqa: E731
        return left

    def term() -> Callable[[Any], bool]:
        left = factor()
        while peek() in ("AND", "cmp", "NOT", "("):  # AND is implicit between terms, as in AIP-160
            if peek() == "AND":
                take()
            right, previous = factor(), left
            left = lambda item, a=previous, b=right: a(item) and b(item)  # noqa: E731
        return left

    def factor() -> Callable[[Any], bool]:
        kind, value = take() if peek() is not None else (None, None)
        if kind == "NOT":
            inner = factor()
            return lambda item: not inner(item)
        if kind == "(":
            inner = expr()
            if peek() != ")":
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Unbalanced parentheses in filter.")
            take()
            return inner
        if kind == "cmp":
            return _comparison(*value)
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unexpected {kind!r} in filter {text!r}.")

    predicate = expr()
    if at != len(tokens):
        raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unable to parse filter {text!r}.")
    return predicate


def _comparison(field: str, op: str, value: str) -> Callable[[Any], bool]:
    if field.startswith("labels."):
        key = field.removeprefix("labels.")
        if op == ":" and value == "*":
            return lambda item: key in item.labels
        if op == "=":
            return lambda item: item.labels.get(key) == value
        if op == "!=":
            return lambda item: item.labels.get(key) != value
    elif field == "state" and op in ("=", "!="):
        if value not in JobState.__members__:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unknown state {value!r} in filter.")
        number = JobState[value].value
        return (lambda item: item.state == number) if op == "=" else (lambda item: item.state != number)
    elif field == "display_name" and op in ("=", "!="):
        return (
            (lambda item: item.display_name == value)
            if op == "="
            else (lambda item: item.display_name != value)
        )
    raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported filter field or operator: {field}{op}.")


# -- the fake -----------------------------------------------------------------------------------------


class FakeVertex:
    def __init__(self, tls: LocalhostTls, *, max_page_size: int = 100) -> None:
        self.tls = tls
        self.max_page_size = max_page_size
        self.calls: list[Call] = []
        self.delay_seconds = 0.0
        self.operation_polls = 0  # unfinished GetOperation answers before an operation is done
        self._failures: list[tuple[grpc.StatusCode, str | None, float | None]] = []
        # PredictionService (Gemini): the publisher models it knows, and what they answer.
        self.publisher_models = {"gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash-001"}
        self.embedding_models = {"gemini-embedding-001", "text-embedding-005"}
        self.generate_answers: dict[str, str] = {}
        self.generate_responder: Callable[[Any], str] | None = None
        self.thoughts_tokens = 0
        self._lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.custom_jobs: dict[str, Any] = {}  # name → v1.CustomJob protobuf, in creation order
        self.tuning_jobs: dict[str, Any] = {}
        self.models: dict[str, list[Any]] = {}  # model name → its versions (v1.Model protobuf)
        self.endpoints: dict[str, Any] = {}
        self.operations: dict[str, tuple[Any, int]] = {}  # name → (Operation, unfinished polls left)
        self._server: grpc.Server | None = None
        self.endpoint = ""

    # -- control ------------------------------------------------------------------------------------

    def start(self) -> FakeVertex:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        services: dict[str, dict[str, tuple[Callable[..., Any], Any]]] = {
            "google.cloud.aiplatform.v1.JobService": {
                "CreateCustomJob": (self._create_custom_job, v1.CreateCustomJobRequest),
                "GetCustomJob": (self._get_custom_job, v1.GetCustomJobRequest),
                "ListCustomJobs": (self._list_custom_jobs, v1.ListCustomJobsRequest),
                "CancelCustomJob": (self._cancel_custom_job, v1.CancelCustomJobRequest),
            },
            "google.cloud.aiplatform.v1.GenAiTuningService": {
                "CreateTuningJob": (self._create_tuning_job, v1.CreateTuningJobRequest),
                "GetTuningJob": (self._get_tuning_job, v1.GetTuningJobRequest),
                "ListTuningJobs": (self._list_tuning_jobs, v1.ListTuningJobsRequest),
                "CancelTuningJob": (self._cancel_tuning_job, v1.CancelTuningJobRequest),
            },
            "google.cloud.aiplatform.v1.ModelService": {
                "UploadModel": (self._upload_model, v1.UploadModelRequest),
                "GetModel": (self._get_model, v1.GetModelRequest),
                "MergeVersionAliases": (self._merge_version_aliases, v1.MergeVersionAliasesRequest),
                "ListModelVersions": (self._list_model_versions, v1.ListModelVersionsRequest),
            },
            "google.cloud.aiplatform.v1.EndpointService": {
                "CreateEndpoint": (self._create_endpoint, v1.CreateEndpointRequest),
                "GetEndpoint": (self._get_endpoint, v1.GetEndpointRequest),
                "ListEndpoints": (self._list_endpoints, v1.ListEndpointsRequest),
                "DeployModel": (self._deploy_model, v1.DeployModelRequest),
                "UndeployModel": (self._undeploy_model, v1.UndeployModelRequest),
                "UpdateEndpoint": (self._update_endpoint, v1.UpdateEndpointRequest),
            },
            "google.longrunning.Operations": {
                "GetOperation": (self._get_operation, operations_pb2.GetOperationRequest),
                "WaitOperation": (self._wait_operation, operations_pb2.WaitOperationRequest),
            },
            "google.cloud.aiplatform.v1.PredictionService": {
                "GenerateContent": (self._generate_content, v1.GenerateContentRequest),
                "EmbedContent": (self._embed_content, v1.EmbedContentRequest),
            },
        }
        server.add_generic_rpc_handlers(
            tuple(
                grpc.method_handlers_generic_handler(
                    service, {name: self._handler(name, *entry) for name, entry in methods.items()}
                )
                for service, methods in services.items()
            )
        )
        credentials = grpc.ssl_server_credentials([(self.tls.key_pem, self.tls.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._server = server
        self.endpoint = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def fail_next(
        self,
        n: int = 1,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        method: str | None = None,
        *,
        retry_delay: float | None = None,
    ) -> None:
        with self._lock:
            self._failures.extend([(code, method, retry_delay)] * n)

    def requests(self, method: str) -> list[Any]:
        return [c.request for c in self.calls if c.method == method]

    def count(self, method: str) -> int:
        return sum(1 for c in self.calls if c.method == method)

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    def advance(self, name: str, state: str, message: str = "") -> None:
        """Move a job to JOB_STATE_<state>: RUNNING, SUCCEEDED, FAILED (with Vertex's message), …"""
        with self._lock:
            job = self.custom_jobs.get(name) or self.tuning_jobs[name]
            job.state = JobState[f"JOB_STATE_{state}"].value
            now = _now()
            job.update_time.CopyFrom(now)
            if state == "RUNNING" and not job.HasField("start_time"):
                job.start_time.CopyFrom(now)
            if job.state in TERMINAL:
                job.end_time.CopyFrom(now)
            if message:  # google.rpc.Status: INTERNAL for a failed job, DEADLINE_EXCEEDED for an expired one
                job.error.code = {"FAILED": 13, "EXPIRED": 4}.get(state, 1)
                job.error.message = message
            if state == "SUCCEEDED" and name in self.tuning_jobs:
                job.tuned_model.model = f"{self._parent_of(name)}/models/{next(self._ids)}@1"

    def seed_custom_jobs(
        self,
        n: int,
        *,
        state: str = "RUNNING",
        labels: dict[str, str] | None = None,
        output_prefix: str = "gs://bench",
    ) -> list[str]:
        """n jobs already at Vertex (what a poller finds after n submits), without n create calls."""
        parent = "projects/atalaya-test/locations/us-central1"
        names = []
        with self._lock:
            for i in range(n):
                job = v1.CustomJob.pb()()
                job.name = f"{parent}/customJobs/{next(self._ids)}"
                job.display_name = f"seeded-{i}"
                job.state = JobState[f"JOB_STATE_{state}"].value
                job.create_time.CopyFrom(_now())
                job.start_time.CopyFrom(job.create_time)
                job.labels.update({"atalaya-managed": "true", "atalaya-key": f"seeded-{i}", **(labels or {})})
                job.job_spec.base_output_directory.output_uri_prefix = f"{output_prefix}/seeded-{i}"
                pool = job.job_spec.worker_pool_specs.add()
                pool.machine_spec.machine_type = "g2-standard-12"
                pool.container_spec.image_uri = "trainer:latest"
                self.custom_jobs[job.name] = job
                names.append(job.name)
        return names

    # -- serving ------------------------------------------------------------------------------------

    def _handler(self, method: str, serve: Callable[..., Any], request_cls: Any) -> grpc.RpcMethodHandler:
        pb_class = request_cls if hasattr(request_cls, "FromString") else request_cls.pb()

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            with self._lock:
                failure, retry_delay = None, None
                for i, (_code, only, _delay) in enumerate(self._failures):
                    if only in (None, method):
                        failure, _, retry_delay = self._failures.pop(i)
                        break
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            if failure is not None:
                self._record(method, request, failure.name)
                message = FAILURE_MESSAGES.get(failure, "The service is currently unavailable (fake).")
                if retry_delay is None:
                    context.abort(failure, message)
                detail = any_pb2.Any()
                detail.Pack(error_details_pb2.RetryInfo(retry_delay=_duration(retry_delay)))
                status = status_pb2.Status(code=failure.value[0], message=message, details=[detail])
                context.abort_with_status(rpc_status.to_status(status))
            try:
                with self._lock:
                    response = serve(request)
            except Abort as exc:
                self._record(method, request, exc.code.name)
                context.abort(exc.code, exc.message)
            self._record(method, request, "OK")
            return response

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=pb_class.FromString,
            response_serializer=lambda message: message.SerializeToString(),
        )

    def _record(self, method: str, request: Any, status: str) -> None:
        with self._lock:
            self.calls.append(Call(method, request, status))

    # -- helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _parent_of(name: str) -> str:
        return "/".join(name.split("/")[:4])

    def _check_parent(self, parent: str) -> None:
        if not _PARENT.fullmatch(parent):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid parent {parent!r}: projects/*/locations/*."
            )

    @staticmethod
    def _check_labels(labels: Any) -> None:
        for key, value in labels.items():
            if not _LABEL_KEY.fullmatch(key) or not _LABEL.fullmatch(value):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Invalid label {key}={value}: keys and values can be no longer than 63 characters "
                    "and can only contain lowercase letters, numeric characters, underscores and dashes.",
                )

    def _page(self, items: list[Any], request: Any, mask: Any = None) -> tuple[list[Any], str]:
        size = min(request.page_size or self.max_page_size, self.max_page_size)
        start = int(request.page_token) if request.page_token else 0
        chosen = items[start : start + size]
        if mask is not None and mask.paths:
            masked = []
            for item in chosen:
                out = type(item)()
                mask.MergeMessage(item, out)
                masked.append(out)
            chosen = masked
        token = str(start + size) if start + size < len(items) else ""
        return chosen, token

    def _operation(self, owner: str, response: Any, metadata: Any) -> Any:
        operation = operations_pb2.Operation(name=f"{owner}/operations/{next(self._ids)}")
        metadata.generic_metadata.create_time.CopyFrom(_now())
        operation.metadata.Pack(metadata)
        operation.response.Pack(response)
        operation.done = self.operation_polls == 0
        self.operations[operation.name] = (operation, self.operation_polls)
        if operation.done:
            return operation
        pending = operations_pb2.Operation(name=operation.name, done=False)
        pending.metadata.CopyFrom(operation.metadata)
        return pending

    # -- JobService ---------------------------------------------------------------------------------

    def _create_custom_job(self, request: Any) -> Any:
        self._check_parent(request.parent)
        job = v1.CustomJob.pb()()
        job.CopyFrom(request.custom_job)
        if not job.display_name:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "CustomJob.display_name is required.")
        if not job.job_spec.worker_pool_specs:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "At least one worker pool spec is required.")
        for pool in job.job_spec.worker_pool_specs:
            if not pool.container_spec.image_uri:
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "A worker pool needs container_spec.image_uri.")
            if not pool.machine_spec.machine_type:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, "A worker pool needs machine_spec.machine_type."
                )
            if pool.machine_spec.accelerator_count and not pool.machine_spec.accelerator_type:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "accelerator_count is set but accelerator_type is ACCELERATOR_TYPE_UNSPECIFIED.",
                )
            if pool.machine_spec.machine_type.startswith(
                "g2-"
            ) and pool.machine_spec.accelerator_type not in (
                0,
                v1.AcceleratorType.NVIDIA_L4.value,
            ):
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Accelerator {v1.AcceleratorType(pool.machine_spec.accelerator_type).name} "
                    f"is not supported for machine type {pool.machine_spec.machine_type}.",
                )
        self._check_labels(job.labels)
        job.name = f"{request.parent}/customJobs/{next(self._ids)}"
        job.state = JobState.JOB_STATE_QUEUED.value
        job.create_time.CopyFrom(_now())
        job.update_time.CopyFrom(job.create_time)
        self.custom_jobs[job.name] = job
        return job

    def _get_custom_job(self, request: Any) -> Any:
        if request.name not in self.custom_jobs:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"CustomJob {request.name} not found.")
        return self.custom_jobs[request.name]

    def _list_custom_jobs(self, request: Any) -> Any:
        self._check_parent(request.parent)
        keep = compile_filter(request.filter)
        prefix = request.parent + "/"
        items = [job for name, job in self.custom_jobs.items() if name.startswith(prefix) and keep(job)]
        page, token = self._page(items, request, request.read_mask)
        response = v1.ListCustomJobsResponse.pb()(next_page_token=token)
        response.custom_jobs.extend(page)
        return response

    def _cancel(self, jobs: dict[str, Any], name: str) -> Any:
        if name not in jobs:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Job {name} not found.")
        job = jobs[name]
        if job.state in TERMINAL or job.state == JobState.JOB_STATE_CANCELLING:
            raise Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Cannot cancel job {name} in state {JobState(job.state).name}.",
            )
        job.state = JobState.JOB_STATE_CANCELLING.value
        job.update_time.CopyFrom(_now())
        return empty_pb2.Empty()

    def _cancel_custom_job(self, request: Any) -> Any:
        return self._cancel(self.custom_jobs, request.name)

    # -- GenAiTuningService -------------------------------------------------------------------------

    def _create_tuning_job(self, request: Any) -> Any:
        self._check_parent(request.parent)
        job = v1.TuningJob.pb()()
        job.CopyFrom(request.tuning_job)
        if not job.base_model:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "TuningJob.base_model is required.")
        if not job.supervised_tuning_spec.training_dataset_uri.startswith("gs://"):
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "supervised_tuning_spec.training_dataset_uri must be a Cloud Storage URI (gs://…).",
            )
        self._check_labels(job.labels)
        job.name = f"{request.parent}/tuningJobs/{next(self._ids)}"
        job.state = JobState.JOB_STATE_PENDING.value
        job.create_time.CopyFrom(_now())
        job.update_time.CopyFrom(job.create_time)
        self.tuning_jobs[job.name] = job
        return job

    def _get_tuning_job(self, request: Any) -> Any:
        if request.name not in self.tuning_jobs:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"TuningJob {request.name} not found.")
        return self.tuning_jobs[request.name]

    def _list_tuning_jobs(self, request: Any) -> Any:
        self._check_parent(request.parent)
        keep = compile_filter(request.filter)
        prefix = request.parent + "/"
        items = [job for name, job in self.tuning_jobs.items() if name.startswith(prefix) and keep(job)]
        page, token = self._page(items, request)
        response = v1.ListTuningJobsResponse.pb()(next_page_token=token)
        response.tuning_jobs.extend(page)
        return response

    def _cancel_tuning_job(self, request: Any) -> Any:
        return self._cancel(self.tuning_jobs, request.name)

    # -- ModelService -------------------------------------------------------------------------------

    def _version(self, name: str) -> Any:
        """A model version by `models/X`, `models/X@3` or `models/X@alias` (default: alias `default`)."""
        model, _, which = name.partition("@")
        if model not in self.models:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Model {model} not found.")
        which = which or "default"
        for version in self.models[model]:
            if version.version_id == which or which in version.version_aliases:
                return version
        raise Abort(grpc.StatusCode.NOT_FOUND, f"Model version {name} not found.")

    def _check_aliases(self, model: str, version_id: str, aliases: Any) -> None:
        for alias in aliases:
            if not _ALIAS.fullmatch(alias.removeprefix("-")):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid version alias {alias!r}.")
            if alias.startswith("-"):
                continue
            for other in self.models.get(model, []):
                if other.version_id != version_id and alias in other.version_aliases:
                    raise Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"Alias {alias!r} is already used by version {other.version_id} of {model}.",
                    )

    def _upload_model(self, request: Any) -> Any:
        self._check_parent(request.parent)
        model = v1.Model.pb()()
        model.CopyFrom(request.model)
        if not model.display_name:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Model.display_name is required.")
        if not model.container_spec.image_uri:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Model.container_spec.image_uri is required.")
        self._check_labels(model.labels)
        if request.parent_model:
            if request.parent_model not in self.models:
                raise Abort(grpc.StatusCode.NOT_FOUND, f"Parent model {request.parent_model} not found.")
            name = request.parent_model
        else:
            name = f"{request.parent}/models/{next(self._ids)}"
        versions = self.models.get(name, [])
        version_id = str(len(versions) + 1)
        self._check_aliases(name, version_id, model.version_aliases)
        model.name = name
        model.version_id = version_id
        if not versions and "default" not in model.version_aliases:
            model.version_aliases.insert(0, "default")
        model.create_time.CopyFrom(_now())
        model.version_create_time.CopyFrom(model.create_time)
        self.models[name] = [*versions, model]
        response = v1.UploadModelResponse.pb()(model=name, model_version_id=version_id)
        return self._operation(name, response, v1.UploadModelOperationMetadata.pb()())

    def _get_model(self, request: Any) -> Any:
        return self._version(request.name)

    def _merge_version_aliases(self, request: Any) -> Any:
        version = self._version(request.name)
        self._check_aliases(version.name, version.version_id, request.version_aliases)
        current = list(version.version_aliases)
        for alias in request.version_aliases:
            if alias.startswith("-"):
                if alias[1:] == "default":
                    raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "The default alias cannot be removed.")
                current = [a for a in current if a != alias[1:]]
            elif alias not in current:
                current.append(alias)
        del version.version_aliases[:]
        version.version_aliases.extend(current)
        version.version_update_time.CopyFrom(_now())
        return version

    def _list_model_versions(self, request: Any) -> Any:
        if request.name not in self.models:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Model {request.name} not found.")
        page, token = self._page(self.models[request.name], request, request.read_mask)
        response = v1.ListModelVersionsResponse.pb()(next_page_token=token)
        response.models.extend(page)
        return response

    # -- EndpointService ----------------------------------------------------------------------------

    def _endpoint(self, name: str) -> Any:
        if name not in self.endpoints:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Endpoint {name} not found.")
        return self.endpoints[name]

    def _create_endpoint(self, request: Any) -> Any:
        self._check_parent(request.parent)
        endpoint = v1.Endpoint.pb()()
        endpoint.CopyFrom(request.endpoint)
        if not endpoint.display_name:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Endpoint.display_name is required.")
        self._check_labels(endpoint.labels)
        endpoint.name = f"{request.parent}/endpoints/{request.endpoint_id or next(self._ids)}"
        endpoint.create_time.CopyFrom(_now())
        self.endpoints[endpoint.name] = endpoint
        return self._operation(endpoint.name, endpoint, v1.CreateEndpointOperationMetadata.pb()())

    def _get_endpoint(self, request: Any) -> Any:
        return self._endpoint(request.name)

    def _list_endpoints(self, request: Any) -> Any:
        self._check_parent(request.parent)
        keep = compile_filter(request.filter)
        items = [e for n, e in self.endpoints.items() if n.startswith(request.parent + "/") and keep(e)]
        page, token = self._page(items, request)
        response = v1.ListEndpointsResponse.pb()(next_page_token=token)
        response.endpoints.extend(page)
        return response

    @staticmethod
    def _check_split(split: dict[str, int], ids: set[str]) -> None:
        unknown = set(split) - ids
        if unknown:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"traffic_split names models not deployed on the endpoint: {sorted(unknown)}.",
            )
        if split and sum(split.values()) != 100:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"The sum of traffic_split values must be 100, not {sum(split.values())}.",
            )

    def _deploy_model(self, request: Any) -> Any:
        endpoint = self._endpoint(request.endpoint)
        version = self._version(request.deployed_model.model)
        deployed = v1.DeployedModel.pb()()
        deployed.CopyFrom(request.deployed_model)
        deployed.id = deployed.id or str(next(self._ids)) + "000"
        deployed.model = version.name
        deployed.model_version_id = version.version_id
        deployed.create_time.CopyFrom(_now())
        ids = {d.id for d in endpoint.deployed_models}
        split = {(deployed.id if k == "0" else k): v for k, v in request.traffic_split.items()}
        self._check_split(split, ids | {deployed.id})
        if not split:
            split = {**dict(endpoint.traffic_split), deployed.id: 0} if ids else {deployed.id: 100}
        endpoint.deployed_models.append(deployed)
        endpoint.traffic_split.clear()
        endpoint.traffic_split.update(split)
        response = v1.DeployModelResponse.pb()(deployed_model=deployed)
        return self._operation(endpoint.name, response, v1.DeployModelOperationMetadata.pb()())

    def _undeploy_model(self, request: Any) -> Any:
        endpoint = self._endpoint(request.endpoint)
        ids = [d.id for d in endpoint.deployed_models]
        if request.deployed_model_id not in ids:
            raise Abort(
                grpc.StatusCode.NOT_FOUND,
                f"Deployed model {request.deployed_model_id} not found on {endpoint.name}.",
            )
        remaining = set(ids) - {request.deployed_model_id}
        split = dict(request.traffic_split)
        if split:
            self._check_split(split, remaining)
        elif endpoint.traffic_split.get(request.deployed_model_id, 0) and remaining:
            raise Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"Deployed model {request.deployed_model_id} still takes traffic: give traffic_split.",
            )
        else:
            split = {k: v for k, v in endpoint.traffic_split.items() if k != request.deployed_model_id}
        kept = [d for d in endpoint.deployed_models if d.id != request.deployed_model_id]
        del endpoint.deployed_models[:]
        endpoint.deployed_models.extend(kept)
        endpoint.traffic_split.clear()
        endpoint.traffic_split.update(split if remaining else {})
        return self._operation(
            endpoint.name, v1.UndeployModelResponse.pb()(), v1.UndeployModelOperationMetadata.pb()()
        )

    def _update_endpoint(self, request: Any) -> Any:
        endpoint = self._endpoint(request.endpoint.name)
        paths = set(request.update_mask.paths)
        if not paths or paths - {"traffic_split", "display_name", "labels", "description"}:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported update_mask {sorted(paths)}.")
        if "traffic_split" in paths:
            split = dict(request.endpoint.traffic_split)
            self._check_split(split, {d.id for d in endpoint.deployed_models})
            endpoint.traffic_split.clear()
            endpoint.traffic_split.update(split)
        mask = field_mask_pb2.FieldMask(paths=sorted(paths - {"traffic_split"}))
        if mask.paths:
            mask.MergeMessage(
                request.endpoint, endpoint, replace_message_field=True, replace_repeated_field=True
            )
        endpoint.update_time.CopyFrom(_now())
        return endpoint

    # -- Operations ---------------------------------------------------------------------------------

    def _get_operation(self, request: Any) -> Any:
        if request.name not in self.operations:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Operation {request.name} not found.")
        operation, polls = self.operations[request.name]
        if polls > 0:
            self.operations[request.name] = (operation, polls - 1)
            pending = operations_pb2.Operation(name=operation.name, done=False)
            pending.metadata.CopyFrom(operation.metadata)
            return pending
        operation.done = True
        return operation

    def _wait_operation(self, request: Any) -> Any:
        if request.name not in self.operations:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Operation {request.name} not found.")
        operation, _ = self.operations[request.name]
        self.operations[request.name] = (operation, 0)
        operation.done = True
        return operation

    # -- PredictionService (Gemini) -----------------------------------------------------------------

    def _model_id(self, name: str, known: set[str]) -> str:
        if _ENDPOINT.fullmatch(name):
            if name not in self.endpoints:
                raise Abort(grpc.StatusCode.NOT_FOUND, f"Endpoint `{name}` not found.")
            return name.rsplit("/", 1)[-1]
        match = _PUBLISHER_MODEL.fullmatch(name)
        if not match:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Invalid resource name {name!r}: projects/*/locations/*/publishers/google/models/*.",
            )
        if match.group("model") not in known:
            raise Abort(grpc.StatusCode.NOT_FOUND, f"Publisher Model `{name}` not found.")
        return match.group("model")

    def _generate_content(self, request: Any) -> Any:
        model = self._model_id(request.model, self.publisher_models)
        if not request.contents:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Unable to submit request because at least one contents field is required.",
            )
        for content in request.contents:
            if content.role not in ("user", "model"):
                raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "Please use a valid role: user, model.")
            if not content.parts:
                raise Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Unable to submit request because it must include at least one parts field.",
                )
        config = request.generation_config
        if config.HasField("temperature") and not 0 <= config.temperature < 2.0001:
            raise Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Unable to submit request because it has a temperature value of {config.temperature:g} but "
                "the supported range is from 0 (inclusive) to 2.0001 (exclusive). Update the value and try again.",
            )
        last_user = next(
            ("".join(p.text for p in c.parts) for c in reversed(request.contents) if c.role == "user"), ""
        )
        if self.generate_responder is not None:
            text = self.generate_responder(request)
        else:
            text = self.generate_answers.get(last_user, f"echo: {last_user}")
        finish = v1.Candidate.FinishReason.STOP
        if config.HasField("max_output_tokens") and _words(text) > config.max_output_tokens:
            text = " ".join(text.split()[: config.max_output_tokens])
            finish = v1.Candidate.FinishReason.MAX_TOKENS
        prompt = [p.text for p in request.system_instruction.parts] + [
            p.text for c in request.contents for p in c.parts
        ]
        response = v1.GenerateContentResponse.pb()(model_version=model, response_id=f"fake-{next(self._ids)}")
        candidate = response.candidates.add(index=0, finish_reason=finish.value)
        candidate.content.role = "model"
        candidate.content.parts.add(text=text)
        usage = response.usage_metadata
        usage.prompt_token_count = sum(_words(t) for t in prompt)
        usage.candidates_token_count = _words(text)
        usage.thoughts_token_count = self.thoughts_tokens
        usage.total_token_count = (
            usage.prompt_token_count + usage.candidates_token_count + self.thoughts_tokens
        )
        return response

    def _embed_content(self, request: Any) -> Any:
        self._model_id(request.model, self.embedding_models)
        text = "".join(p.text for p in request.content.parts)
        if not text:
            raise Abort(grpc.StatusCode.INVALID_ARGUMENT, "The content to embed is empty.")
        response = v1.EmbedContentResponse.pb()()
        response.embedding.values.extend(embedding_for(text))
        response.usage_metadata.prompt_token_count = _words(text)
        return response
