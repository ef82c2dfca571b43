"""Vertex managed supervised tuning (Gemini), kept in this one module.

It goes through the supported API, `aiplatform_v1.GenAiTuningServiceClient` (CreateTuningJob,
ListTuningJobs, GetTuningJob, CancelTuningJob), not `vertexai.tuning`, which carries a deprecation
notice in google-cloud-aiplatform (DESIGN.md). The same rules as the CustomJob path: the labels
`atalaya-managed=true` and `atalaya-key=<key>` make submit idempotent (one list call filtered on the
key label before creating) and let one list call per page answer for every running tuning job.

Hyperparameters: `epochs` → epoch_count, `learning_rate_multiplier` → learning_rate_multiplier and
`rank` (1, 2, 4, 8, 16 or 32) → adapter_size; anything else is Vertex's default. The job's output is
the tuned model's resource name (`tuned_model.model`), reported as `JobStatus.output_uri`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.api_core import exceptions as api_exceptions
from google.cloud import aiplatform_v1

from apps.cloud.jobs.base import BackendError, JobState, JobStatus, TrainingSpec
from apps.cloud.jobs.vertex import (
    KEY_LABEL,
    LIST_PAGE_SIZE,
    MANAGED_LABEL,
    TERMINAL_STATE_NAMES,
    VertexClients,
    _when,
    job_labels,
    label_value,
)

AdapterSize = aiplatform_v1.SupervisedHyperParameters.AdapterSize
ADAPTER_SIZES = {
    1: AdapterSize.ADAPTER_SIZE_ONE,
    2: AdapterSize.ADAPTER_SIZE_TWO,
    4: AdapterSize.ADAPTER_SIZE_FOUR,
    8: AdapterSize.ADAPTER_SIZE_EIGHT,
    16: AdapterSize.ADAPTER_SIZE_SIXTEEN,
    32: AdapterSize.ADAPTER_SIZE_THIRTY_TWO,
}


def tuning_job(clients: VertexClients, spec: TrainingSpec) -> aiplatform_v1.TuningJob:
    hp = spec.hyperparameters
    hyper = aiplatform_v1.SupervisedHyperParameters()
    if hp.get("epochs") is not None:
        hyper.epoch_count = int(hp["epochs"])
    if hp.get("learning_rate_multiplier") is not None:
        hyper.learning_rate_multiplier = float(hp["learning_rate_multiplier"])
    if hp.get("rank") is not None:
        if int(hp["rank"]) not in ADAPTER_SIZES:
            raise BackendError(
                f"managed tuning takes an adapter size (rank) of {sorted(ADAPTER_SIZES)}, not {hp['rank']}"
            )
        hyper.adapter_size = ADAPTER_SIZES[int(hp["rank"])]
    return aiplatform_v1.TuningJob(
        base_model=spec.base_model,
        tuned_model_display_name=spec.display_name[:128] or spec.key,
        supervised_tuning_spec=aiplatform_v1.SupervisedTuningSpec(
            training_dataset_uri=spec.train_uri,
            validation_dataset_uri=spec.validation_uri,
            hyper_parameters=hyper,
        ),
        labels=job_labels(spec),
        service_account=clients.service_account,
    )


def _jobs(clients: VertexClients, filter_: str, what: str) -> Iterable[Any]:
    """Every TuningJob (protobuf) the filter lists, one call per page."""
    request = aiplatform_v1.ListTuningJobsRequest(
        parent=clients.parent, filter=filter_, page_size=LIST_PAGE_SIZE
    )
    for page in clients.pages(clients.tuning.list_tuning_jobs, request, what):
        yield from aiplatform_v1.ListTuningJobsResponse.pb(page).tuning_jobs


def submit(clients: VertexClients, spec: TrainingSpec) -> JobStatus:
    found = list(_jobs(clients, f'labels.{KEY_LABEL}="{label_value(spec.key)}"', "look up the tuning job"))
    if found:
        return status(max(found, key=lambda job: (job.create_time.seconds, job.create_time.nanos)))
    created = clients.call(
        clients.tuning.create_tuning_job,
        aiplatform_v1.CreateTuningJobRequest(parent=clients.parent, tuning_job=tuning_job(clients, spec)),
        "create the tuning job",
    )
    return status(aiplatform_v1.TuningJob.pb(created))


def poll(clients: VertexClients, names: set[str]) -> dict[str, JobStatus]:
    """Statuses of these tuning jobs: one list call per page of running ones, then a get for each
    job that left that list (finished since the last poll, or unknown: absent from the answer)."""
    not_terminal = " AND ".join(f'state!="{state}"' for state in TERMINAL_STATE_NAMES)
    running = {
        job.name: job for job in _jobs(clients, f'labels.{MANAGED_LABEL}="true" AND {not_terminal}', "list")
    }
    out = {name: status(running[name]) for name in names & running.keys()}
    for name in sorted(names - running.keys()):
        try:
            job = clients.call(
                clients.tuning.get_tuning_job,
                aiplatform_v1.GetTuningJobRequest(name=name),
                "read the tuning job",
            )
        except BackendError as exc:
            if isinstance(exc.__cause__, api_exceptions.NotFound):
                continue
            raise
        out[name] = status(aiplatform_v1.TuningJob.pb(job))
    return out


def cancel(clients: VertexClients, name: str) -> None:
    clients.call(
        clients.tuning.cancel_tuning_job,
        aiplatform_v1.CancelTuningJobRequest(name=name),
        "cancel the tuning job",
    )


def status(job: Any) -> JobStatus:
    state = JobState(job.state) if job.state in JobState._value2member_map_ else JobState.PENDING
    error = job.error.message if job.HasField("error") else ""
    if not error and state is JobState.EXPIRED:
        error = "The tuning job expired before it could run."
    return JobStatus(
        name=job.name,
        state=state,
        error=error,
        started_at=_when(job.start_time),
        ended_at=_when(job.end_time),
        output_uri=job.tuned_model.model,
    )
