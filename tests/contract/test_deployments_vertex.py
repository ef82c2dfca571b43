"""Deployment requests end to end on JOB_BACKEND=vertex, against the in-repo Vertex fake through the real
client library: the adapter version uploaded to the Model Registry with its aliases (a new version under
the adapter's model the second time), the endpoint created at the first deploy, a canary at 90/10,
promote (the earlier model undeployed), roll back (the new model undeployed, 100 % back on the
previous; a promoted one brings back the deployment it replaced), retry safety and Vertex's refusals.
What the fake received and what it holds are asserted, and the console's state beside them."""

import pytest
from google.cloud import aiplatform_v1

from apps.cloud.jobs import get_serving_backend
from apps.registry.models import AdapterAlias, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.tuning.deployments import (
    deployment_action_apply,
    deployment_create,
    deployment_deploy,
    deployment_promote,
    deployment_rollback,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.models import DeploymentStatus
from apps.workflows.services import approval_decision_record


@pytest.fixture
def scene(world, vertex_settings):
    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="google/gemma-3-1b-it",
        context_window=32768,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")
    v1 = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/tone/1")
    v2 = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/tone/2")
    AdapterAlias.objects.create(adapter=adapter, name="champion", version=v1, moved_by=world.gov)
    AdapterAlias.objects.create(adapter=adapter, name="challenger", version=v2, moved_by=world.gov)
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-bot")
    assert endpoint.backend == "vertex"
    return {"v1": v1, "v2": v2, "endpoint": endpoint}


def _approved(world, endpoint, version, strategy="replace", percent=None, **hardware):
    draft = deployment_create(
        actor=world.eng,
        endpoint=endpoint,
        adapter_version=version,
        strategy=strategy,
        traffic_percent=percent,
        justification="tone",
        **hardware,
    )
    approval = deployment_submit(actor=world.eng, deployment=draft)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")
    return draft


def _deploy(deployment):
    return deployment_deploy(deployment_id=deployment.pk, backend=get_serving_backend())


def _promote(actor, deployment):
    deployment_promote(actor=actor, deployment=deployment)
    return deployment_action_apply(deployment_id=deployment.pk, backend=get_serving_backend())


def _rollback(actor, deployment):
    deployment_rollback(actor=actor, deployment=deployment)
    return deployment_action_apply(deployment_id=deployment.pk, backend=get_serving_backend())


def _held(vertex_fake, endpoint):
    endpoint.refresh_from_db()
    held = vertex_fake.endpoints[endpoint.resource_name]
    return {k: v for k, v in dict(held.traffic_split).items() if v}, [d.id for d in held.deployed_models]


def test_a_replace_uploads_the_version_with_its_aliases_and_creates_the_endpoint(world, scene, vertex_fake):
    deployment = _deploy(
        _approved(
            world,
            scene["endpoint"],
            scene["v1"],
            machine_type="g2-standard-12",
            accelerator_type="NVIDIA_L4",
            accelerator_count=1,
        )
    )
    assert deployment.status == DeploymentStatus.LIVE, deployment.error

    (upload,) = vertex_fake.requests("UploadModel")
    assert upload.model.artifact_uri == "gs://artifacts/tone/1"
    assert list(upload.model.version_aliases) == ["champion"]
    assert upload.model.container_spec.image_uri == "us-docker.pkg.dev/atalaya-test/atalaya/serving:1.0"
    assert upload.model.labels["atalaya-team"] == "support" and upload.model.labels["atalaya-version"] == "1"
    assert deployment.model_resource.startswith("projects/atalaya-test/locations/us-central1/models/")
    assert deployment.model_version_id == "1"

    (created,) = vertex_fake.requests("CreateEndpoint")
    assert created.endpoint.display_name == "atalaya-support-support-bot"
    (deploy,) = vertex_fake.requests("DeployModel")
    assert deploy.deployed_model.model == f"{deployment.model_resource}@1"
    machine = deploy.deployed_model.dedicated_resources.machine_spec
    assert (machine.machine_type, machine.accelerator_count) == ("g2-standard-12", 1)
    assert machine.accelerator_type == aiplatform_v1.AcceleratorType.NVIDIA_L4
    split, deployed = _held(vertex_fake, scene["endpoint"])
    assert split == {deployment.deployed_model_id: 100} and deployed == [deployment.deployed_model_id]
    assert scene["endpoint"].resource_name == created_name(vertex_fake)
    assert scene["endpoint"].traffic_split == {deployment.deployed_model_id: 100}


def created_name(vertex_fake):
    (name,) = vertex_fake.endpoints
    return name


def test_deploy_at_90_10_then_roll_back_undeploys_the_canary(world, scene, vertex_fake):
    endpoint = scene["endpoint"]
    first = _deploy(_approved(world, endpoint, scene["v1"]))
    _promote(world.eng, first)
    canary = _deploy(_approved(world, endpoint, scene["v2"], "canary", 10))
    assert canary.status == DeploymentStatus.LIVE, canary.error

    second_upload = vertex_fake.requests("UploadModel")[1]
    assert second_upload.parent_model == first.model_resource  # a new version of the adapter's model
    assert canary.model_resource == first.model_resource and canary.model_version_id == "2"
    versions = {v.version_id: list(v.version_aliases) for v in vertex_fake.models[first.model_resource]}
    assert versions == {"1": ["default", "champion"], "2": ["challenger"]}
    deploy_request = vertex_fake.requests("DeployModel")[1]
    assert dict(deploy_request.traffic_split) == {"0": 10, first.deployed_model_id: 90}
    split, _ = _held(vertex_fake, endpoint)
    assert split == {first.deployed_model_id: 90, canary.deployed_model_id: 10}
    assert endpoint.traffic_split == split
    assert canary.previous_traffic_split == {first.deployed_model_id: 100}

    _rollback(world.gov, canary)
    (undeploy,) = vertex_fake.requests("UndeployModel")
    assert undeploy.deployed_model_id == canary.deployed_model_id
    split, deployed = _held(vertex_fake, endpoint)
    assert split == {first.deployed_model_id: 100} and deployed == [first.deployed_model_id]
    assert endpoint.traffic_split == {first.deployed_model_id: 100}
    canary.refresh_from_db()
    assert canary.status == DeploymentStatus.ROLLED_BACK


def test_promote_undeploys_the_earlier_model_and_rolling_it_back_brings_that_one_back(
    world, scene, vertex_fake
):
    endpoint = scene["endpoint"]
    first = _deploy(_approved(world, endpoint, scene["v1"]))
    _promote(world.eng, first)
    canary = _deploy(_approved(world, endpoint, scene["v2"], "canary", 10))

    _promote(world.eng, canary)
    update = vertex_fake.requests("UpdateEndpoint")[-1]
    assert dict(update.endpoint.traffic_split) == {canary.deployed_model_id: 100}
    (undeploy,) = vertex_fake.requests("UndeployModel")
    assert undeploy.deployed_model_id == first.deployed_model_id
    split, deployed = _held(vertex_fake, endpoint)
    assert split == {canary.deployed_model_id: 100} and deployed == [canary.deployed_model_id]
    first.refresh_from_db()
    assert first.status == DeploymentStatus.REPLACED

    _rollback(world.eng, canary)
    redeploy = vertex_fake.requests("DeployModel")[-1]
    assert redeploy.deployed_model.model == f"{first.model_resource}@1"
    first.refresh_from_db()
    assert first.status == DeploymentStatus.PROMOTED
    split, deployed = _held(vertex_fake, endpoint)
    assert split == {first.deployed_model_id: 100} and deployed == [first.deployed_model_id]
    assert vertex_fake.requests("UndeployModel")[-1].deployed_model_id == canary.deployed_model_id
    assert vertex_fake.count("UploadModel") == 2  # nothing uploaded again


def test_the_deploy_task_run_twice_deploys_once_and_a_second_deployment_reuses_the_upload(
    world, scene, vertex_fake
):
    endpoint = scene["endpoint"]
    draft = _approved(world, endpoint, scene["v1"])
    first = _deploy(draft)
    assert _deploy(draft).deployed_model_id == first.deployed_model_id
    assert vertex_fake.count("DeployModel") == 1 and vertex_fake.count("UploadModel") == 1
    _rollback(world.eng, first)
    again = _deploy(_approved(world, endpoint, scene["v1"]))  # the same version, requested anew
    assert again.model_resource == first.model_resource and again.model_version_id == "1"
    assert vertex_fake.count("UploadModel") == 1 and vertex_fake.count("DeployModel") == 2


def test_vertex_s_refusal_fails_the_deployment_with_its_message(world, scene, vertex_fake, vertex_settings):
    vertex_settings.VERTEX_SERVING_IMAGE = ""
    get_serving_backend.cache_clear()
    failed = _deploy(_approved(world, scene["endpoint"], scene["v1"]))
    assert failed.status == DeploymentStatus.FAILED
    assert "VERTEX_SERVING_IMAGE is not set" in failed.error
    assert vertex_fake.count("DeployModel") == 0


def test_moving_an_alias_moves_it_on_the_uploaded_versions(
    world, scene, vertex_fake, django_capture_on_commit_callbacks, enqueued
):
    """champion moves from v1 to v2 through its approval: the Model Registry versions follow (Vertex's
    MergeVersionAliases), and an alias taken off is removed there too."""
    from apps.registry.services import alias_move_request
    from apps.tuning.deployments import provider_aliases_sync

    endpoint = scene["endpoint"]
    first = _deploy(_approved(world, endpoint, scene["v1"]))
    _promote(world.eng, first)
    _deploy(_approved(world, endpoint, scene["v2"], "canary", 10))

    move = alias_move_request(
        actor=world.eng, adapter=scene["v1"].adapter, alias="champion", version_number=2
    )
    with django_capture_on_commit_callbacks(execute=True):
        approval_decision_record(
            request_id=move.request.pk, reviewer=world.gov, decision="approve", comment=""
        )
    assert ("workers.deployments.sync_provider_aliases", (scene["v1"].adapter_id,)) in enqueued
    assert provider_aliases_sync(adapter_id=scene["v1"].adapter_id, backend=get_serving_backend()) == 2
    versions = {v.version_id: set(v.version_aliases) for v in vertex_fake.models[first.model_resource]}
    assert versions == {"1": {"default"}, "2": {"challenger", "champion"}}

    # challenger taken off (moved to no version): gone from the Model Registry as well.
    off = alias_move_request(
        actor=world.eng, adapter=scene["v1"].adapter, alias="challenger", version_number=None
    )
    approval_decision_record(request_id=off.request.pk, reviewer=world.gov, decision="approve", comment="")
    provider_aliases_sync(adapter_id=scene["v1"].adapter_id, backend=get_serving_backend())
    versions = {v.version_id: set(v.version_aliases) for v in vertex_fake.models[first.model_resource]}
    assert versions == {"1": {"default"}, "2": {"champion"}}
