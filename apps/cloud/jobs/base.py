"""The GPU jobs and serving interfaces (DESIGN.md, "Outside systems"): the tuning app talks to these only.

Two implementations of each, chosen by `JOB_BACKEND`: `local` (the embedded default: the trainer in
deploy/trainer/ as a subprocess; endpoints and traffic splits kept in the console) and `vertex`
(google-cloud-aiplatform: CustomJob or managed supervised tuning; Model Registry; Endpoint.deploy).

Rules every implementation keeps:
- `submit` is idempotent on `TrainingSpec.key`: the console stores the key before the call goes out, and a
  retried or re-run dispatch that finds a job with that key adopts it instead of starting a second one.
- `poll` answers for many jobs with a bounded number of calls (list by label, not one get per job), so the
  beat poller's cost does not grow with one request per job per cycle.
- Errors the provider reports on a job are data (`JobStatus.error`), not exceptions; `BackendUnavailable` is
  raised only when the provider cannot be reached now (the task retries later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any, Protocol


class JobState(IntEnum):
    """Vertex AI's JobState numbers, used by every backend."""

    QUEUED = 1
    PENDING = 2
    RUNNING = 3
    SUCCEEDED = 4
    FAILED = 5
    CANCELLING = 6
    CANCELLED = 7
    PAUSED = 8
    EXPIRED = 9
    UPDATING = 10
    PARTIALLY_SUCCEEDED = 11


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.EXPIRED, JobState.PARTIALLY_SUCCEEDED}
)


class BackendUnavailable(Exception):
    """The provider could not be reached or refused the call for a transient reason: retry later."""


class BackendError(Exception):
    """The provider refused the call for a reason retrying will not fix (bad spec, permission)."""


@dataclass(frozen=True)
class TrainingSpec:
    key: str  # idempotency key, stable for one tuning request (e.g. "atalaya-tuning-42")
    display_name: str
    method: str  # "lora" (CustomJob running deploy/trainer) | "vertex_supervised" (managed, Gemini)
    base_model: str  # a Hugging Face id or gs:// path for LoRA; a Gemini model id for managed tuning
    train_uri: str  # gs://…, bq://…, or a local path (local backend)
    validation_uri: str = ""
    hyperparameters: Mapping[str, Any] = field(default_factory=dict)  # rank, alpha, dropout, epochs, lr
    machine_type: str = ""  # e.g. "g2-standard-12"
    accelerator_type: str = ""  # e.g. "NVIDIA_L4"
    accelerator_count: int = 0
    output_uri: str = ""  # where the adapter and metrics.json go
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class JobStatus:
    name: str  # the provider's resource name (Vertex: projects/…/locations/…/customJobs/…)
    state: JobState
    error: str = ""  # the provider's message when FAILED/EXPIRED
    started_at: datetime | None = None
    ended_at: datetime | None = None
    output_uri: str = ""
    metrics: Mapping[str, float] = field(default_factory=dict)  # from metrics.json when SUCCEEDED
    progress: float | None = None  # 0..1 where known
    log_tail: str = ""


class JobBackend(Protocol):
    name: str

    @classmethod
    def from_settings(cls) -> JobBackend: ...

    def submit(self, spec: TrainingSpec) -> JobStatus:
        """Start the job, or return the one already started with this key."""
        ...

    def poll(self, names: Sequence[str]) -> dict[str, JobStatus]:
        """The current status of these jobs (a name the provider no longer knows is absent)."""
        ...

    def cancel(self, name: str) -> None:
        """Ask the provider to cancel; the job moves through CANCELLING to CANCELLED on later polls."""
        ...


@dataclass(frozen=True)
class RegisteredModel:
    name: str  # Vertex: projects/…/models/…; local: the console's id
    version_id: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class DeployedModel:
    endpoint: str  # Vertex: projects/…/endpoints/…
    deployed_model_id: str
    traffic_split: Mapping[str, int] = field(default_factory=dict)  # deployed_model_id → percent, sums to 100


class ServingBackend(Protocol):
    name: str

    @classmethod
    def from_settings(cls) -> ServingBackend: ...

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
        """Upload a model version (a new version of `parent_model` when given) with version aliases."""
        ...

    def set_aliases(
        self, *, model: str, version_id: str, add: Sequence[str], remove: Sequence[str] = ()
    ) -> None: ...

    def deploy(
        self,
        *,
        endpoint: str,  # an endpoint resource name, or a display name to create it under
        model: str,
        version_id: str,
        traffic_percent: int,  # the new deployment's share; the rest keeps the endpoint's current split
        machine_type: str = "",
        accelerator_type: str = "",
        accelerator_count: int = 0,
    ) -> DeployedModel: ...

    def set_traffic(self, *, endpoint: str, traffic_split: Mapping[str, int]) -> DeployedModel: ...

    def undeploy(self, *, endpoint: str, deployed_model_id: str) -> None: ...


# Traffic splits, shared by every serving backend


def scale(shares: Mapping[str, int], total: int) -> dict[str, int]:
    """These shares scaled to sum to `total` in their proportions (largest remainders); all to the
    first when none has any."""
    if not shares:
        return {}
    whole = sum(shares.values())
    if whole == 0:
        return {k: (total if i == 0 else 0) for i, k in enumerate(shares)}
    exact = {k: v * total / whole for k, v in shares.items()}
    out = {k: int(x) for k, x in exact.items()}
    for k in sorted(exact, key=lambda k: exact[k] - out[k], reverse=True)[: total - sum(out.values())]:
        out[k] += 1
    return out


def split_with(current: Mapping[str, int], new_id: str, percent: int) -> dict[str, int]:
    """The endpoint's split with `new_id` at `percent` and the deployments that now take traffic
    sharing the rest in their current proportions."""
    if not 0 <= percent <= 100:
        raise BackendError(f"a traffic share is 0..100 %, not {percent}")
    others = {k: v for k, v in current.items() if k != new_id and v > 0}
    if percent < 100 and not others:
        raise BackendError(f"nothing else on the endpoint takes traffic: it cannot go to {percent} %")
    return {new_id: percent} | scale(others, 100 - percent)
