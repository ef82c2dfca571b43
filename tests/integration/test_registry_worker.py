"""The registry's MLflow mirror through a real Celery worker: registering a version through the API
queues the sync on commit, and the worker writes it into the MLflow store the console is configured with."""

import pytest
from mlflow import MlflowClient

from apps.registry.models import AdapterVersion, Provider
from apps.registry.services import adapter_create, base_model_register
from tests.factories import make_token, make_world
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_version_registered_through_the_api_reaches_mlflow_through_the_worker(
    start_worker, tmp_path, settings, api_as
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_TRACKING_URI = settings.MLFLOW_REGISTRY_URI = uri
    worker = start_worker(MLFLOW_TRACKING_URI=uri)
    world = make_world()
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")

    client = api_as(token=make_token(world.eng, world.support, "models:write"))
    response = client.post(
        f"/api/v1/adapters/{adapter.pk}/versions/",
        {"artifact_uri": "gs://artifacts/support-tone/1", "metrics": {"train_loss": 0.4}},
        format="json",
    )
    assert response.status_code == 201, response.content

    version = AdapterVersion.objects.get(adapter=adapter, number=1)
    wait_for(
        lambda: AdapterVersion.objects.filter(pk=version.pk, mlflow_synced_at__isnull=False).exists(),
        worker,
        timeout=90,
        what="version mirrored into MLflow",
    )
    mirrored = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version("support.support-tone", "1")
    assert mirrored.source == "gs://artifacts/support-tone/1"
    assert mirrored.tags["atalaya.version_id"] == str(version.pk)
