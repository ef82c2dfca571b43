"""The registry's mirror in MLflow: registered models, versions (with a run holding the metrics,
hyperparameters and lineage), tags and aliases. The console is the source of truth; MLflow follows.

Every function here is idempotent, so the task that calls it can run twice or be retried: a version is
found again by its `atalaya.version_id` tag before one is created, and so is its run. MLflow is imported
lazily (it takes seconds), only in the processes that sync.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.registry.models import Adapter, AdapterVersion, FoundationModel
from apps.registry.services import mlflow_synced

_clients: dict[tuple[str, str], Any] = {}
_lock = threading.Lock()


class MirrorUnavailable(Exception):
    """MLflow could not be reached or refused a call: the task retries, beat catches up later."""


def client() -> Any:
    """The MLflow client of this process. A local SQLite store is created (MLflow's migrations) on first
    use under a file lock: several worker processes meeting an empty store at once would each try to
    create its tables."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    key = (settings.MLFLOW_TRACKING_URI, settings.MLFLOW_REGISTRY_URI)
    with _lock:
        if key not in _clients:
            with _store_lock(key[0]):
                made = MlflowClient(tracking_uri=key[0], registry_uri=key[1])
                made.search_registered_models(max_results=1)  # the registry store is created here, locked
            _clients[key] = made
        return _clients[key]


@contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _missing(exc: Exception) -> bool:
    return getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST"


def _ensure_registered_model(c: Any, name: str, description: str, tags: dict[str, str]) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        model = c.get_registered_model(name)
    except MlflowException as exc:
        if not _missing(exc):
            raise
        c.create_registered_model(name, tags=tags, description=description)
        return c.get_registered_model(name)
    if (model.description or "") != description:
        c.update_registered_model(name, description=description)
    for key, value in tags.items():
        if model.tags.get(key) != value:
            c.set_registered_model_tag(name, key, value)
    return model


def _base_model_tags(model: FoundationModel) -> dict[str, str]:
    return {
        "atalaya.kind": "base_model",
        "atalaya.team": model.team.slug,
        "provider": model.provider,
        "model_id": model.model_id,
        "context_window": str(model.context_window),
    }


def _adapter_tags(adapter: Adapter) -> dict[str, str]:
    return {
        "atalaya.kind": "adapter",
        "atalaya.team": adapter.team.slug,
        "atalaya.adapter_id": str(adapter.pk),
        "base_model": adapter.base_model.model_id,
        "base_provider": adapter.base_model.provider,
        "method": adapter.method,
    }


def sync_base_model(pk: int) -> None:
    model = FoundationModel.objects.select_related("team").get(pk=pk)
    _ensure_registered_model(client(), model.mlflow_name, model.notes, _base_model_tags(model))
    mlflow_synced(kind="base_model", pk=pk)


def _version_run(c: Any, version: AdapterVersion) -> str:
    """The run that carries the version's metrics, hyperparameters and lineage (found again, or made)."""
    from mlflow.entities import Metric, Param, RunTag

    experiment = c.get_experiment_by_name(settings.MLFLOW_EXPERIMENT)
    experiment_id = (
        experiment.experiment_id if experiment else c.create_experiment(settings.MLFLOW_EXPERIMENT)
    )
    found = c.search_runs([experiment_id], f"tags.`atalaya.version_id` = '{version.pk}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = c.create_run(
        experiment_id,
        run_name=f"{version.adapter.mlflow_name}-v{version.number}",
        tags={"atalaya.version_id": str(version.pk), "atalaya.adapter": version.adapter.mlflow_name},
    )
    now = int(version.created_at.timestamp() * 1000)
    params = [
        Param(str(k)[:250], json.dumps(v) if not isinstance(v, str) else v)
        for k, v in version.hyperparameters.items()
    ]
    tags = [RunTag("atalaya.lineage", json.dumps(version.lineage, sort_keys=True)[:5000])]
    if version.dataset_uri:
        tags.append(RunTag("atalaya.dataset_uri", version.dataset_uri))
    c.log_batch(
        run.info.run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in version.metrics.items()],
        params=params,
        tags=tags,
    )
    c.set_terminated(run.info.run_id)
    return run.info.run_id


def _version_tags(version: AdapterVersion) -> dict[str, str]:
    tags = {"atalaya.version_id": str(version.pk), "atalaya.number": str(version.number)}
    if version.dataset_uri:
        tags["atalaya.dataset_uri"] = version.dataset_uri
    for key in ("tuning_request", "job", "requested_by", "approved_by"):
        if version.lineage.get(key) not in (None, ""):
            tags[f"atalaya.{key}"] = str(version.lineage[key])
    return tags


def sync_version(pk: int) -> str:
    """The version in MLflow, with its run. Earlier versions of the adapter that MLflow lacks go first, so
    MLflow numbers them as the console does (MLflow numbers versions itself, in the order they arrive)."""
    version = AdapterVersion.objects.select_related("adapter__team", "adapter__base_model").get(pk=pk)
    adapter = version.adapter
    earlier = AdapterVersion.objects.filter(adapter=adapter, number__lt=version.number, mlflow_version="")
    for previous in earlier.order_by("number").values_list("pk", flat=True):
        sync_version(previous)
    c = client()
    _ensure_registered_model(c, adapter.mlflow_name, adapter.description, _adapter_tags(adapter))
    run_id = _version_run(c, version)
    found = c.search_model_versions(
        f"name='{adapter.mlflow_name}' and tags.`atalaya.version_id`='{version.pk}'", max_results=1
    )
    if found:
        number = str(found[0].version)
    else:
        created = c.create_model_version(
            adapter.mlflow_name,
            source=version.artifact_uri,
            run_id=run_id,
            tags=_version_tags(version),
            description=version.notes or None,
        )
        number = str(created.version)
    mlflow_synced(kind="version", pk=pk, version=number, run_id=run_id)
    return number


def sync_adapter(pk: int) -> None:
    """The adapter's registered model, and its aliases exactly as the console has them."""
    adapter = Adapter.objects.select_related("team", "base_model").get(pk=pk)
    c = client()
    model = _ensure_registered_model(c, adapter.mlflow_name, adapter.description, _adapter_tags(adapter))
    wanted: dict[str, str] = {}
    for alias in adapter.aliases.select_related("version"):
        number = alias.version.mlflow_version or sync_version(alias.version_id)
        wanted[alias.name] = number
    current = {name: str(number) for name, number in (model.aliases or {}).items()}
    for name in current.keys() - wanted.keys():
        c.delete_registered_model_alias(adapter.mlflow_name, name)
    for name, number in wanted.items():
        if current.get(name) != number:
            c.set_registered_model_alias(adapter.mlflow_name, name, number)
    mlflow_synced(kind="adapter", pk=pk)


SYNC = {"base_model": sync_base_model, "adapter": sync_adapter, "version": sync_version}


def sync(kind: str, pk: int) -> None:
    """Bring MLflow up to date with one row. Raises MirrorUnavailable when MLflow cannot take it now."""
    from mlflow.exceptions import MlflowException
    from sqlalchemy.exc import SQLAlchemyError

    if kind not in SYNC:
        raise ValueError(f"unknown registry kind {kind!r}")
    try:
        SYNC[kind](pk)
    except (FoundationModel.DoesNotExist, Adapter.DoesNotExist, AdapterVersion.DoesNotExist):
        return  # gone since it was queued
    except (MlflowException, OSError, SQLAlchemyError) as exc:
        _clients.clear()  # a store that failed half-way is opened afresh on the retry
        raise MirrorUnavailable(str(exc)) from exc


def unsynced(limit: int = 200) -> list[tuple[str, int]]:
    """What MLflow does not have yet, versions first (aliases need their versions)."""
    rows: list[tuple[str, int]] = []
    for kind, model in (("base_model", FoundationModel), ("version", AdapterVersion), ("adapter", Adapter)):
        rows += [
            (kind, pk)
            for pk in model.objects.filter(mlflow_synced_at__isnull=True).values_list("pk", flat=True)[:limit]
        ]
    return rows[:limit]
