"""Deployment requests on the local serving backend: validation with precise messages, approval (four
eyes), the deploy task (retry-safe, failures keep the provider's message), the splits of replace, canary
and A/B, promote, roll back (the previous split back, the new model undeployed), and every illegal move."""

import json

import pytest

from apps.audit.models import AuditEvent
from apps.cloud.jobs import get_serving_backend
from apps.cloud.jobs.base import BackendError
from apps.cloud.jobs.local_serving import LocalServingBackend
from apps.common.exceptions import Conflict, PermissionDenied, Unprocessable
from apps.registry.models import AdapterAlias, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from apps.tuning.deployments import (
    _move,
    deployment_action_apply,
    deployment_create,
    deployment_deploy,
    deployment_promote,
    deployment_rollback,
    deployment_submit,
    endpoint_create,
)
from apps.tuning.models import DEPLOYMENT_TRANSITIONS, Deployment, DeploymentStatus, Endpoint
from apps.workflows.models import ApprovalRequest, RequestStatus, SubjectKind
from apps.workflows.services import approval_decision_record

# -- the local serving backend on its own ---------------------------------------------------------------


@pytest.fixture
def local(tmp_path) -> LocalServingBackend:
    return LocalServingBackend(tmp_path / "endpoints")


def _two_versions(local):
    first = local.register_model(
        display_name="support-tone", artifact_uri="gs://a/1", serving_image="", aliases=["champion"]
    )
    second = local.register_model(
        display_name="support-tone",
        artifact_uri="gs://a/2",
        serving_image="",
        aliases=["champion"],
        parent_model=first.name,
    )
    return first, second


def test_local_versions_live_under_one_model_and_an_alias_moves_to_the_newest(local):
    first, second = _two_versions(local)
    assert second.name == first.name and (first.version_id, second.version_id) == ("1", "2")
    versions = local.model(first.name)["versions"]
    assert [(v["version_id"], v["aliases"]) for v in versions] == [("1", []), ("2", ["champion"])]
    local.set_aliases(model=first.name, version_id="1", add=["challenger"], remove=[])
    local.set_aliases(model=first.name, version_id="2", add=[], remove=["champion"])
    versions = local.model(first.name)["versions"]
    assert [(v["version_id"], v["aliases"]) for v in versions] == [("1", ["challenger"]), ("2", [])]


def test_local_canary_splits_90_10_and_undeploy_needs_the_split_first(local):
    first, second = _two_versions(local)
    live = local.deploy(endpoint="support-bot", model=first.name, version_id="1", traffic_percent=100)
    assert live.endpoint.startswith("endpoints/") and live.traffic_split == {live.deployed_model_id: 100}
    canary = local.deploy(endpoint=live.endpoint, model=second.name, version_id="2", traffic_percent=10)
    assert canary.traffic_split == {live.deployed_model_id: 90, canary.deployed_model_id: 10}
    assert local.endpoint("support-bot")["traffic_split"] == canary.traffic_split  # found by display name

    with pytest.raises(BackendError, match="still takes traffic: set the split first"):
        local.undeploy(endpoint=live.endpoint, deployed_model_id=canary.deployed_model_id)
    local.set_traffic(endpoint=live.endpoint, traffic_split={live.deployed_model_id: 100})
    local.undeploy(endpoint=live.endpoint, deployed_model_id=canary.deployed_model_id)
    local.undeploy(endpoint=live.endpoint, deployed_model_id=canary.deployed_model_id)  # a retry: nothing
    held = local.endpoint(live.endpoint)
    assert held["traffic_split"] == {live.deployed_model_id: 100}
    assert [d["id"] for d in held["deployed_models"]] == [live.deployed_model_id]


def test_local_ab_scales_the_others_and_a_redeploy_adopts(local):
    first, second = _two_versions(local)
    a = local.deploy(endpoint="e", model=first.name, version_id="1", traffic_percent=100)
    b = local.deploy(endpoint=a.endpoint, model=second.name, version_id="2", traffic_percent=30)
    assert b.traffic_split == {a.deployed_model_id: 70, b.deployed_model_id: 30}
    again = local.deploy(endpoint=a.endpoint, model=second.name, version_id="2", traffic_percent=30)
    assert again.deployed_model_id == b.deployed_model_id
    assert len(local.endpoint(a.endpoint)["deployed_models"]) == 2
    # A replace at 100 % leaves the others deployed at 0 %.
    other = local.register_model(display_name="x", artifact_uri="gs://x/1", serving_image="")
    c = local.deploy(endpoint=a.endpoint, model=other.name, version_id="1", traffic_percent=100)
    assert c.traffic_split == {c.deployed_model_id: 100, a.deployed_model_id: 0, b.deployed_model_id: 0}


def test_local_refuses_what_vertex_refuses(local):
    first, _ = _two_versions(local)
    with pytest.raises(BackendError, match="nothing else on the endpoint takes traffic"):
        local.deploy(endpoint="e", model=first.name, version_id="1", traffic_percent=10)
    live = local.deploy(endpoint="e", model=first.name, version_id="1", traffic_percent=100)
    with pytest.raises(BackendError, match="must be 100, not 90"):
        local.set_traffic(endpoint=live.endpoint, traffic_split={live.deployed_model_id: 90})
    with pytest.raises(BackendError, match="not deployed on the endpoint"):
        local.set_traffic(endpoint=live.endpoint, traffic_split={"999": 100})
    with pytest.raises(BackendError, match="not found"):
        local.deploy(endpoint="e", model=first.name, version_id="7", traffic_percent=100)
    with pytest.raises(BackendError, match=r"No endpoint named .projects/p/endpoints/1"):
        local.set_traffic(endpoint="projects/p/endpoints/1", traffic_split={})
    # The last model may leave with its traffic: nothing else would serve anyway.
    local.undeploy(endpoint=live.endpoint, deployed_model_id=live.deployed_model_id)
    assert local.endpoint(live.endpoint) | {"name": ""} == {
        "name": "",
        "display_name": "e",
        "deployed_models": [],
        "traffic_split": {},
    }


def test_local_state_is_one_json_file_per_endpoint_written_whole(local):
    first, _ = _two_versions(local)
    live = local.deploy(endpoint="e", model=first.name, version_id="1", traffic_percent=100)
    number = live.endpoint.split("/")[1]
    on_disk = json.loads((local.root / "endpoints" / f"{number}.json").read_text())
    assert on_disk["traffic_split"] == {live.deployed_model_id: 100}
    assert not list((local.root / "endpoints").glob(".tmp-*"))


# -- the console's deployments --------------------------------------------------------------------------


@pytest.fixture
def backend(settings, tmp_path):
    settings.JOB_BACKEND = "local"
    settings.LOCAL_ENDPOINTS_DIR = str(tmp_path / "serving")
    get_serving_backend.cache_clear()
    yield get_serving_backend()
    get_serving_backend.cache_clear()


@pytest.fixture
def versions(world):
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
    return v1, v2


@pytest.fixture
def endpoint(world, backend):
    return endpoint_create(actor=world.eng, team=world.support, name="support-bot")


def _draft(world, endpoint, version, strategy="replace", percent=None, **extra):
    values = {"justification": "Better tone.", "adapter_version": version}
    values.update(extra)
    return deployment_create(
        actor=world.eng, endpoint=endpoint, strategy=strategy, traffic_percent=percent, **values
    )


def _approve(world, deployment):
    approval = deployment_submit(actor=world.eng, deployment=deployment)
    approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="ok")
    deployment.refresh_from_db()
    return deployment


def _live(world, endpoint, version, backend, strategy="replace", percent=None):
    deployment = _approve(world, _draft(world, endpoint, version, strategy, percent))
    return deployment_deploy(deployment_id=deployment.pk, backend=backend)


def _promote(actor, deployment, backend):
    deployment_promote(actor=actor, deployment=deployment)
    return deployment_action_apply(deployment_id=deployment.pk, backend=backend)


def _rollback(actor, deployment, backend):
    deployment_rollback(actor=actor, deployment=deployment)
    return deployment_action_apply(deployment_id=deployment.pk, backend=backend)


def _split(endpoint):
    endpoint.refresh_from_db()
    return {k: v for k, v in endpoint.traffic_split.items() if v}


def test_an_endpoint_is_created_by_engineers_with_a_valid_unique_name(world, backend):
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-bot")
    assert endpoint.backend == "local" and endpoint.resource_name == "" and endpoint.traffic_split == {}
    assert AuditEvent.objects.filter(action="deployments.endpoint_created").count() == 1
    with pytest.raises(Conflict, match="already exists in support"):
        endpoint_create(actor=world.admin, team=world.support, name="support-bot")
    with pytest.raises(Unprocessable, match="name: lowercase letters"):
        endpoint_create(actor=world.eng, team=world.support, name="Support Bot")
    for user in ("gov", "owner", "ann1", "fin_eng"):
        with pytest.raises(PermissionDenied):
            endpoint_create(actor=getattr(world, user), team=world.support, name="other")
    assert Endpoint.objects.count() == 1


@pytest.mark.parametrize(
    ("strategy", "percent", "message"),
    [
        ("replace", 50, "traffic_percent: a replace takes 100 % at once"),
        ("canary", None, "traffic_percent: a canary takes 1 to 50 % of the traffic"),
        ("canary", 51, "traffic_percent: a canary takes 1 to 50 %"),
        ("canary", 0, "traffic_percent: a canary takes 1 to 50 %"),
        ("ab", 100, "traffic_percent: an A/B split gives the new model 1 to 99 %"),
        ("blue_green", 10, "strategy: one of replace, canary, ab"),
    ],
)
def test_strategies_take_their_own_share_of_the_traffic(
    world, endpoint, versions, strategy, percent, message
):
    with pytest.raises(Unprocessable, match=message):
        _draft(world, endpoint, versions[0], strategy, percent)
    assert not Deployment.objects.exists()


def test_replace_takes_100_and_a_canary_needs_something_serving(world, endpoint, versions):
    assert _draft(world, endpoint, versions[0]).traffic_percent == 100
    with pytest.raises(Unprocessable, match="shares support-bot with what serves there now") as refused:
        _draft(world, endpoint, versions[0], "canary", 10)
    assert refused.value.code == "nothing_to_share"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"justification": " "}, "justification: say why"),
        ({"accelerator_type": "NVIDIA_L4", "machine_type": "g2-standard-12"}, "go together"),
        ({"accelerator_type": "NVIDIA_L4", "accelerator_count": 1}, "machine_type: an accelerator"),
        ({"accelerator_count": 9, "accelerator_type": "NVIDIA_L4", "machine_type": "g2"}, "0 to 8"),
        ({"machine_type": "g2 standard"}, "machine_type: the provider's name, without spaces"),
    ],
)
def test_bad_requests_are_refused_with_a_precise_message(world, endpoint, versions, extra, message):
    with pytest.raises(Unprocessable, match=message):
        _draft(world, endpoint, versions[0], **extra)
    assert not Deployment.objects.exists()


def test_what_is_deployed_must_be_one_model_of_the_endpoint_s_team(world, endpoint, versions):
    with pytest.raises(Unprocessable, match="Give an adapter version or a base model"):
        _draft(world, endpoint, None)
    with pytest.raises(Unprocessable, match="one of them"):
        _draft(world, endpoint, versions[0], base_model=versions[0].adapter.base_model)
    finance_model = base_model_register(
        actor=world.fin_eng, team=world.finance, provider="hugging_face", model_id="ledger", context_window=8
    )
    finance_adapter = adapter_create(actor=world.fin_eng, base_model=finance_model, name="ledger-tone")
    finance_version = adapter_version_register(
        actor=world.fin_eng, adapter=finance_adapter, artifact_uri="gs://f/1"
    )
    with pytest.raises(Unprocessable, match="adapter_version: it belongs to another team"):
        _draft(world, endpoint, finance_version)
    gemini = base_model_register(
        actor=world.eng, team=world.support, provider="vertex", model_id="gemini-2.5-flash", context_window=8
    )
    with pytest.raises(Unprocessable, match=r"base_model: Vertex AI .* models are served by their provider"):
        _draft(world, endpoint, None, base_model=gemini)
    open_model = _draft(world, endpoint, None, base_model=versions[0].adapter.base_model)
    assert open_model.base_model.model_id == "google/gemma-3-1b-it"


@pytest.mark.parametrize("user", ["gov", "owner", "ann1", "fin_eng"])
def test_only_engineers_and_admins_of_the_team_request_deployments(world, endpoint, versions, user):
    with pytest.raises(PermissionDenied):
        deployment_create(
            actor=getattr(world, user),
            endpoint=endpoint,
            adapter_version=versions[0],
            strategy="replace",
            justification="x",
        )


def test_submitted_it_waits_for_governance_and_its_requester_cannot_approve(
    world, endpoint, versions, enqueued, django_capture_on_commit_callbacks
):
    deployment = _draft(world, endpoint, versions[0])
    approval = deployment_submit(actor=world.eng, deployment=deployment)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.PENDING_APPROVAL
    assert approval.subject_kind == SubjectKind.DEPLOYMENT and approval.approvals_required == 1
    assert approval.summary == "Deploy support/support-tone v1 on support-bot (replace, 100 %)"
    with pytest.raises(PermissionDenied):
        approval_decision_record(request_id=approval.pk, reviewer=world.eng, decision="approve", comment="")
    with pytest.raises(Conflict, match="cannot become pending approval"):
        deployment_submit(actor=world.eng, deployment=deployment)
    with django_capture_on_commit_callbacks(execute=True):
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="ok")
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.APPROVED
    assert ("workers.deployments.deploy", (deployment.pk,)) in enqueued


def test_rejection_ends_it_and_changes_requested_sends_it_back_to_draft(world, endpoint, versions):
    first = deployment_submit(actor=world.eng, deployment=_draft(world, endpoint, versions[0]))
    approval_decision_record(request_id=first.pk, reviewer=world.gov, decision="reject", comment="no")
    rejected = Deployment.objects.get(pk=first.object_id)
    assert rejected.status == DeploymentStatus.REJECTED and rejected.closed_at is not None

    second = deployment_submit(actor=world.eng, deployment=_draft(world, endpoint, versions[0]))
    approval_decision_record(request_id=second.pk, reviewer=world.gov, decision="request_changes", comment="")
    draft = Deployment.objects.get(pk=second.object_id)
    assert draft.status == DeploymentStatus.DRAFT
    assert deployment_submit(actor=world.eng, deployment=draft).status == RequestStatus.OPEN


def test_one_change_at_a_time_on_an_endpoint(world, endpoint, versions, backend):
    waiting = _draft(world, endpoint, versions[0])
    deployment_submit(actor=world.eng, deployment=waiting)
    with pytest.raises(Conflict, match=f"already has deployment #{waiting.pk} pending approval") as busy:
        _draft(world, endpoint, versions[1])
    assert busy.value.code == "endpoint_busy"


def test_a_replace_goes_live_at_100_with_the_version_registered_and_its_aliases(
    world, endpoint, versions, backend
):
    deployment = _live(world, endpoint, versions[0], backend)
    assert deployment.status == DeploymentStatus.LIVE and deployment.deployed_at is not None
    assert deployment.model_resource.startswith("models/") and deployment.model_version_id == "1"
    assert deployment.previous_traffic_split == {}
    endpoint.refresh_from_db()
    assert endpoint.resource_name.startswith("endpoints/")
    assert endpoint.traffic_split == {deployment.deployed_model_id: 100}
    held = backend.endpoint(endpoint.resource_name)
    assert held["display_name"] == "atalaya-support-support-bot"
    assert held["traffic_split"] == endpoint.traffic_split
    model = backend.model(deployment.model_resource)
    assert model["versions"][0]["artifact_uri"] == "gs://artifacts/tone/1"
    assert model["versions"][0]["aliases"] == ["champion"]
    actions = list(
        AuditEvent.objects.filter(action__startswith="deployments.").values_list("action", flat=True)
    )
    assert {"deployments.deployment_started", "deployments.deployment_live"} <= set(actions)


def test_the_deploy_task_run_twice_deploys_once(world, endpoint, versions, backend):
    deployment = _live(world, endpoint, versions[0], backend)
    again = deployment_deploy(deployment_id=deployment.pk, backend=backend)
    assert again.status == DeploymentStatus.LIVE and again.deployed_model_id == deployment.deployed_model_id
    endpoint.refresh_from_db()
    assert len(backend.endpoint(endpoint.resource_name)["deployed_models"]) == 1
    assert AuditEvent.objects.filter(action="deployments.deployment_live").count() == 1


def test_a_worker_killed_after_the_deploy_call_adopts_the_deployment_on_retry(
    world, endpoint, versions, backend
):
    deployment = _approve(world, _draft(world, endpoint, versions[0]))

    class Crash(Exception):
        pass

    real_deploy = backend.deploy

    def deploy_then_die(**kwargs):
        real_deploy(**kwargs)
        raise Crash

    backend.deploy = deploy_then_die
    with pytest.raises(Crash):
        deployment_deploy(deployment_id=deployment.pk, backend=backend)
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.DEPLOYING and deployment.model_resource  # recorded before
    backend.deploy = real_deploy

    retried = deployment_deploy(deployment_id=deployment.pk, backend=backend)
    assert retried.status == DeploymentStatus.LIVE
    held = backend.endpoint(retried.endpoint.resource_name or "atalaya-support-support-bot")
    assert [d["id"] for d in held["deployed_models"]] == [retried.deployed_model_id]
    assert len(backend.model(retried.model_resource)["versions"]) == 1  # uploaded once


def test_a_provider_refusal_fails_the_deployment_with_its_message(world, endpoint, versions, backend):
    deployment = _approve(world, _draft(world, endpoint, versions[0]))

    def refuse(**kwargs):
        raise BackendError("Quota exceeded for NVIDIA_L4 in us-central1.")

    backend.deploy = refuse
    failed = deployment_deploy(deployment_id=deployment.pk, backend=backend)
    assert failed.status == DeploymentStatus.FAILED
    assert failed.error == "Quota exceeded for NVIDIA_L4 in us-central1." and failed.closed_at
    assert AuditEvent.objects.filter(action="deployments.deployment_failed").count() == 1
    assert deployment_deploy(deployment_id=deployment.pk, backend=backend).status == DeploymentStatus.FAILED


def test_an_endpoint_of_another_backend_fails_with_a_clear_message(world, endpoint, versions, backend):
    Endpoint.objects.filter(pk=endpoint.pk).update(backend="vertex")
    deployment = _approve(world, _draft(world, endpoint, versions[0]))
    failed = deployment_deploy(deployment_id=deployment.pk, backend=backend)
    assert failed.status == DeploymentStatus.FAILED
    assert (
        failed.error
        == "The endpoint support-bot lives on vertex, but this console serves with local (JOB_BACKEND)."
    )


def test_a_canary_at_10_splits_90_10_and_promote_gives_it_everything(world, endpoint, versions, backend):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.eng, first, backend)
    canary = _live(world, endpoint, versions[1], backend, "canary", 10)
    assert _split(endpoint) == {first.deployed_model_id: 90, canary.deployed_model_id: 10}
    assert canary.previous_traffic_split == {first.deployed_model_id: 100}
    assert canary.model_resource == first.model_resource and canary.model_version_id == "2"

    promoted = _promote(world.eng, canary, backend)
    assert promoted.status == DeploymentStatus.PROMOTED
    assert _split(endpoint) == {canary.deployed_model_id: 100}
    held = backend.endpoint(endpoint.resource_name)
    assert [d["id"] for d in held["deployed_models"]] == [canary.deployed_model_id]
    first.refresh_from_db()
    assert first.status == DeploymentStatus.REPLACED and first.closed_at is not None
    event = AuditEvent.objects.filter(action="deployments.deployment_promoted").latest("id")
    assert event.actor_id == world.eng.pk
    assert event.changes["undeployed"] == [first.deployed_model_id] and event.changes["replaced"] == [
        first.pk
    ]


def test_an_ab_split_and_its_rollback_put_the_previous_split_back(world, endpoint, versions, backend):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.gov, first, backend)  # governance may promote
    ab = _live(world, endpoint, versions[1], backend, "ab", 30)
    assert _split(endpoint) == {first.deployed_model_id: 70, ab.deployed_model_id: 30}

    rolled = _rollback(world.eng, ab, backend)
    assert rolled.status == DeploymentStatus.ROLLED_BACK and rolled.closed_at is not None
    assert _split(endpoint) == {first.deployed_model_id: 100}
    held = backend.endpoint(endpoint.resource_name)
    assert held["traffic_split"] == {first.deployed_model_id: 100}
    assert [d["id"] for d in held["deployed_models"]] == [first.deployed_model_id]  # the new one undeployed
    first.refresh_from_db()
    assert first.status == DeploymentStatus.PROMOTED
    assert AuditEvent.objects.filter(action="deployments.deployment_rolled_back").count() == 1


def test_a_live_replace_rolls_back_to_the_deployment_standing_by_at_0(world, endpoint, versions, backend):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.eng, first, backend)
    second = _live(world, endpoint, versions[1], backend)
    assert _split(endpoint) == {second.deployed_model_id: 100}
    assert len(backend.endpoint(endpoint.resource_name)["deployed_models"]) == 2  # the first at 0 %
    _rollback(world.gov, second, backend)
    assert _split(endpoint) == {first.deployed_model_id: 100}


def test_rolling_back_a_promoted_deployment_brings_back_the_one_it_replaced(
    world, endpoint, versions, backend
):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.eng, first, backend)
    canary = _live(world, endpoint, versions[1], backend, "canary", 10)
    _promote(world.eng, canary, backend)

    rolled = _rollback(world.eng, canary, backend)
    assert rolled.status == DeploymentStatus.ROLLED_BACK
    first.refresh_from_db()
    assert first.status == DeploymentStatus.PROMOTED and first.closed_at is None
    assert _split(endpoint) == {first.deployed_model_id: 100}
    held = backend.endpoint(endpoint.resource_name)
    assert held["traffic_split"] == {first.deployed_model_id: 100}
    assert [(d["id"], d["version_id"]) for d in held["deployed_models"]] == [(first.deployed_model_id, "1")]


def test_rolling_back_the_only_deployment_empties_the_endpoint(world, endpoint, versions, backend):
    only = _live(world, endpoint, versions[0], backend)
    _rollback(world.admin, only, backend)
    assert _split(endpoint) == {}
    assert backend.endpoint(endpoint.resource_name)["deployed_models"] == []


@pytest.mark.parametrize("user", ["owner", "ann1", "fin_eng", "fin_gov"])
def test_only_engineers_admins_and_governance_of_the_team_promote_or_roll_back(
    world, endpoint, versions, backend, user
):
    live = _live(world, endpoint, versions[0], backend)
    before = AuditEvent.objects.count()
    for action in (deployment_promote, deployment_rollback):
        with pytest.raises(PermissionDenied):
            action(actor=getattr(world, user), deployment=live)
    assert not Deployment.objects.get(pk=live.pk).action
    live.refresh_from_db()
    assert live.status == DeploymentStatus.LIVE and AuditEvent.objects.count() == before
    assert _split(endpoint) == {live.deployed_model_id: 100}


def test_illegal_clicks_are_refused_and_change_nothing(world, endpoint, versions, backend):
    draft = _draft(world, endpoint, versions[0])
    with pytest.raises(Conflict, match="A deployment that is draft cannot become promoted"):
        _promote(world.eng, draft, backend)
    with pytest.raises(Conflict, match="cannot become rolled back"):
        _rollback(world.eng, draft, backend)
    first = _live(world, endpoint, versions[0], backend)
    _rollback(world.eng, first, backend)
    with pytest.raises(Conflict, match="rolled back cannot become rolled back"):
        _rollback(world.eng, first, backend)
    with pytest.raises(Conflict, match="rolled back cannot become promoted"):
        _promote(world.eng, first, backend)


def test_a_promoted_deployment_is_not_rolled_back_under_a_live_canary(world, endpoint, versions, backend):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.eng, first, backend)
    canary = _live(world, endpoint, versions[1], backend, "canary", 10)
    with pytest.raises(Conflict, match=f"already has deployment #{canary.pk} live"):
        _rollback(world.eng, first, backend)
    assert _split(endpoint) == {first.deployed_model_id: 90, canary.deployed_model_id: 10}


def test_a_click_is_recorded_audited_and_applied_once_by_the_worker(
    world, endpoint, versions, backend, enqueued, django_capture_on_commit_callbacks
):
    live = _live(world, endpoint, versions[0], backend)
    with django_capture_on_commit_callbacks(execute=True):
        asked = deployment_promote(actor=world.gov, deployment=live)
    assert asked.status == DeploymentStatus.LIVE and asked.action == "promote"
    assert asked.action_requested_by == world.gov
    assert ("workers.deployments.apply_action", (live.pk,)) in enqueued
    assert AuditEvent.objects.filter(action="deployments.promote_requested").count() == 1
    with pytest.raises(Conflict, match=f"#{live.pk} is already promoting") as pending:
        deployment_rollback(actor=world.eng, deployment=live)
    assert pending.value.code == "action_pending"

    done = deployment_action_apply(deployment_id=live.pk, backend=backend)
    assert done.status == DeploymentStatus.PROMOTED and done.action == ""
    again = deployment_action_apply(deployment_id=live.pk, backend=backend)  # a second run: nothing
    assert again.status == DeploymentStatus.PROMOTED
    event = AuditEvent.objects.get(action="deployments.deployment_promoted")
    assert event.actor_id == world.gov.pk


def test_a_provider_refusal_keeps_its_message_and_the_click_can_be_repeated(
    world, endpoint, versions, backend
):
    live = _live(world, endpoint, versions[0], backend)
    real = backend.set_traffic

    def refuse(**kwargs):
        raise BackendError("Endpoint is being updated.")

    backend.set_traffic = refuse
    failed = _promote(world.eng, live, backend)
    assert failed.status == DeploymentStatus.LIVE and failed.action == ""
    assert failed.error == "Could not promote: Endpoint is being updated."
    assert AuditEvent.objects.filter(action="deployments.action_failed").count() == 1
    assert not AuditEvent.objects.filter(action="deployments.deployment_promoted").exists()

    backend.set_traffic = real
    assert _promote(world.eng, failed, backend).status == DeploymentStatus.PROMOTED


def test_a_worker_killed_half_way_through_a_rollback_finishes_it_on_retry(world, endpoint, versions, backend):
    first = _live(world, endpoint, versions[0], backend)
    _promote(world.eng, first, backend)
    canary = _live(world, endpoint, versions[1], backend, "canary", 10)
    deployment_rollback(actor=world.eng, deployment=canary)
    real = backend.undeploy

    class Crash(Exception):
        pass

    def undeploy_then_die(**kwargs):
        real(**kwargs)
        raise Crash

    backend.undeploy = undeploy_then_die
    with pytest.raises(Crash):
        deployment_action_apply(deployment_id=canary.pk, backend=backend)
    assert Deployment.objects.get(pk=canary.pk).status == DeploymentStatus.LIVE  # nothing recorded yet
    backend.undeploy = real
    done = deployment_action_apply(deployment_id=canary.pk, backend=backend)
    assert done.status == DeploymentStatus.ROLLED_BACK
    assert _split(endpoint) == {first.deployed_model_id: 100}


def test_approval_requests_for_deployments_are_listed_with_their_kind(world, endpoint, versions):
    deployment_submit(actor=world.eng, deployment=_draft(world, endpoint, versions[0]))
    assert ApprovalRequest.objects.get().get_subject_kind_display() == "Deployment request"


ALL = [s.value for s in DeploymentStatus]


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_every_move_the_lifecycle_does_not_list_is_refused(source, target):
    deployment = Deployment(status=source)
    if target in DEPLOYMENT_TRANSITIONS[source]:
        assert _move(deployment, target) == source and deployment.status == target
    else:
        with pytest.raises(Conflict) as refused:
            _move(deployment, target)
        assert refused.value.code == "invalid_transition" and deployment.status == source


def test_beat_queues_again_only_the_work_whose_task_was_lost(world, endpoint, versions, backend, enqueued):
    from datetime import timedelta

    from django.utils import timezone

    from workers.deployments import catch_up

    stuck = _approve(world, _draft(world, endpoint, versions[0]))  # approved, its deploy task lost
    assert catch_up() == {"deploy": 0, "apply_action": 0}  # not stalled yet: a task may still run
    Deployment.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(minutes=46))
    assert catch_up() == {"deploy": 1, "apply_action": 0}
    assert ("workers.deployments.deploy", (stuck.pk,)) in enqueued

    live = deployment_deploy(deployment_id=stuck.pk, backend=backend)
    deployment_promote(actor=world.eng, deployment=live)
    Deployment.objects.filter(pk=live.pk).update(action_requested_at=timezone.now() - timedelta(minutes=46))
    assert catch_up() == {"deploy": 0, "apply_action": 1}
    assert ("workers.deployments.apply_action", (live.pk,)) in enqueued
