import shutil

import pytest

from apps.registry import mlflow_sync
from apps.registry.models import Provider
from apps.registry.services import adapter_create, base_model_register


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory):
    """An empty MLflow SQLite store, made once per test process (MLflow's migrations take seconds)."""
    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    from mlflow import MlflowClient

    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models()
    return path


@pytest.fixture
def mlflow_store(_mlflow_template, tmp_path, settings):
    """A fresh MLflow store for one test: the console's mirror writes there, the test reads it back."""
    path = tmp_path / "mlflow.db"
    shutil.copy(_mlflow_template, path)
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = f"sqlite:///{path}"
    mlflow_sync._clients.clear()
    yield mlflow_sync.client()
    mlflow_sync._clients.clear()


@pytest.fixture
def gemma(world):
    return base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
        notes="Open weights, tuned with LoRA.",
    )


@pytest.fixture
def adapter(world, gemma):
    return adapter_create(actor=world.eng, base_model=gemma, name="support-tone", description="Our tone.")
