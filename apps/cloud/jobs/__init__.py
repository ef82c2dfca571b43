"""GPU jobs and model serving: `get_job_backend()` and `get_serving_backend()` return the configured ones.

JOB_BACKEND=local   (default) apps.cloud.jobs.local: the trainer in deploy/trainer/ as a subprocess;
                    apps.cloud.jobs.local_serving: endpoints and traffic splits kept in the console
JOB_BACKEND=vertex  apps.cloud.jobs.vertex: Vertex AI CustomJob (LoRA) or managed supervised tuning
                    (Gemini); Model Registry versions and aliases; Endpoint deployments and traffic splits
"""

from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.cloud.jobs.base import (
    TERMINAL_STATES,
    BackendError,
    BackendUnavailable,
    DeployedModel,
    JobBackend,
    JobState,
    JobStatus,
    RegisteredModel,
    ServingBackend,
    TrainingSpec,
)

JOB_BACKENDS = {
    "local": "apps.cloud.jobs.local.LocalJobBackend",
    "vertex": "apps.cloud.jobs.vertex.VertexJobBackend",
}
SERVING_BACKENDS = {
    "local": "apps.cloud.jobs.local_serving.LocalServingBackend",
    "vertex": "apps.cloud.jobs.vertex.VertexServingBackend",
}


def _backend_class(table: dict[str, str]) -> Any:
    name = settings.JOB_BACKEND
    if name not in table:
        raise ImproperlyConfigured(f"JOB_BACKEND={name!r}: use one of {', '.join(table)}")
    return import_string(table[name])


@cache
def get_job_backend() -> JobBackend:
    return _backend_class(JOB_BACKENDS).from_settings()


@cache
def get_serving_backend() -> ServingBackend:
    return _backend_class(SERVING_BACKENDS).from_settings()


__all__ = [
    "TERMINAL_STATES",
    "BackendError",
    "BackendUnavailable",
    "DeployedModel",
    "JobBackend",
    "JobState",
    "JobStatus",
    "RegisteredModel",
    "ServingBackend",
    "TrainingSpec",
    "get_job_backend",
    "get_serving_backend",
]
