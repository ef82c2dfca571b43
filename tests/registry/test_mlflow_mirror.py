"""The registry mirrored into MLflow (a real MLflow client on a SQLite store, as on the embedded default):
registered models with their tags, versions with a run holding metrics, hyperparameters and lineage, and
aliases exactly as the console has them. Every sync can run twice without duplicating anything."""

import json

from apps.registry import mlflow_sync
from apps.registry.models import Adapter, AdapterVersion, FoundationModel
from apps.registry.services import adapter_version_register, alias_move_request
from apps.workflows.services import approval_decision_record


def _register(world, adapter, n=1, **lineage):
    return adapter_version_register(
        actor=world.eng,
        adapter=adapter,
        artifact_uri=f"gs://atalaya-artifacts/support-tone/run-{n}",
        metrics={"train_loss": [0.5, 0.41, 0.38][n], "validation_loss": [0.6, 0.51, 0.47][n]},
        hyperparameters={"rank": 8, "alpha": 16, "learning_rate": 0.0002},
        dataset_uri="gs://atalaya-data/support/train.jsonl",
        lineage=lineage,
    )


def _approve_alias(world, adapter, alias, number):
    result = alias_move_request(actor=world.eng, adapter=adapter, alias=alias, version_number=number)
    approval_decision_record(request_id=result.request.pk, reviewer=world.gov, decision="approve", comment="")


def test_a_base_model_becomes_a_registered_model_with_its_facts(mlflow_store, gemma):
    mlflow_sync.sync("base_model", gemma.pk)
    mirrored = mlflow_store.get_registered_model("support.base.hugging_face.google__gemma-3-1b-it")
    assert mirrored.tags["model_id"] == "google/gemma-3-1b-it"
    assert mirrored.tags["context_window"] == "32768"
    assert mirrored.description == "Open weights, tuned with LoRA."
    gemma.refresh_from_db()
    assert gemma.mlflow_synced_at is not None


def test_a_version_carries_its_artifact_metrics_and_lineage(mlflow_store, world, adapter):
    version = _register(
        world, adapter, tuning_request=12, job="local-12", requested_by="eng", approved_by="gov"
    )
    number = mlflow_sync.sync_version(version.pk)

    mirrored = mlflow_store.get_model_version("support.support-tone", number)
    assert mirrored.source == "gs://atalaya-artifacts/support-tone/run-1"
    assert mirrored.tags["atalaya.tuning_request"] == "12"
    assert mirrored.tags["atalaya.approved_by"] == "gov"
    run = mlflow_store.get_run(mirrored.run_id)
    assert run.data.metrics == {"train_loss": 0.41, "validation_loss": 0.51}
    assert run.data.params["rank"] == "8"
    assert json.loads(run.data.tags["atalaya.lineage"])["job"] == "local-12"
    version.refresh_from_db()
    assert (version.mlflow_version, version.mlflow_run_id) == (number, run.info.run_id)
    assert (
        mlflow_store.get_registered_model("support.support-tone").tags["base_model"] == "google/gemma-3-1b-it"
    )


def test_syncing_twice_duplicates_nothing(mlflow_store, world, adapter):
    """A retried task, or a sync whose result was lost before it was recorded, finds its version again."""
    version = _register(world, adapter)
    first = mlflow_sync.sync_version(version.pk)
    AdapterVersion.objects.filter(pk=version.pk).update(mlflow_version="", mlflow_synced_at=None)
    second = mlflow_sync.sync_version(version.pk)
    assert first == second
    assert len(mlflow_store.search_model_versions("name='support.support-tone'")) == 1
    experiment = mlflow_store.get_experiment_by_name("atalaya-registry")
    assert len(mlflow_store.search_runs([experiment.experiment_id])) == 1


def test_aliases_follow_the_console(mlflow_store, world, adapter):
    _register(world, adapter, 1)
    _register(world, adapter, 2)
    _approve_alias(world, adapter, "champion", 1)
    _approve_alias(world, adapter, "challenger", 2)
    mlflow_sync.sync("adapter", adapter.pk)  # syncs the versions the aliases need first, in order
    assert list(AdapterVersion.objects.order_by("number").values_list("mlflow_version", flat=True)) == [
        "1",
        "2",
    ]
    aliases = mlflow_store.get_registered_model("support.support-tone").aliases
    assert {name: str(v) for name, v in aliases.items()} == {"champion": "1", "challenger": "2"}

    _approve_alias(world, adapter, "champion", 2)
    _approve_alias(world, adapter, "challenger", None)
    assert Adapter.objects.get(pk=adapter.pk).mlflow_synced_at is None  # the move asked for a new sync
    mlflow_sync.sync("adapter", adapter.pk)
    aliases = mlflow_store.get_registered_model("support.support-tone").aliases
    assert {name: str(v) for name, v in aliases.items()} == {"champion": "2"}


def test_beat_finds_what_mlflow_does_not_have_yet(mlflow_store, world, adapter, gemma):
    version = _register(world, adapter)
    assert set(mlflow_sync.unsynced()) == {
        ("base_model", gemma.pk),
        ("adapter", adapter.pk),
        ("version", version.pk),
    }
    for kind, pk in mlflow_sync.unsynced():
        mlflow_sync.sync(kind, pk)
    assert mlflow_sync.unsynced() == []
    assert not FoundationModel.objects.filter(mlflow_synced_at__isnull=True).exists()


def test_a_row_deleted_before_its_sync_ran_is_skipped(mlflow_store, db):
    mlflow_sync.sync("version", 987654)  # no error: nothing to mirror


def test_a_store_that_cannot_be_opened_is_retried_later_not_a_crash(world, gemma, settings, tmp_path):
    """What MLflow's store raises (SQLAlchemy's errors) makes the task retry later; nothing is marked synced.
    Here, what two workers creating a fresh SQLite store at once ran into: its tables half made by the other
    ("table experiments already exists")."""
    import sqlite3

    import pytest

    broken = tmp_path / "half-made.db"
    with sqlite3.connect(broken) as connection:
        connection.execute("CREATE TABLE experiments (experiment_id INTEGER)")
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"sqlite:///{broken}"
    mlflow_sync._clients.clear()
    with pytest.raises(mlflow_sync.MirrorUnavailable):
        mlflow_sync.sync("base_model", gemma.pk)
    gemma.refresh_from_db()
    assert gemma.mlflow_synced_at is None and mlflow_sync._clients == {}
