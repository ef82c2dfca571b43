"""The registry's services: who may register what, numbering, validation, and alias moves through the
approval engine (four eyes), each audited."""

import pytest

from apps.audit.models import AuditEvent
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.registry.models import AdapterAlias, AliasMove, MoveStatus, Provider, TuningMethod
from apps.registry.services import (
    adapter_create,
    adapter_version_register,
    alias_move_request,
    base_model_register,
)
from apps.workflows.models import RequestStatus
from apps.workflows.services import approval_decision_record


def _version(world, adapter, **extra):
    return adapter_version_register(
        actor=world.eng,
        adapter=adapter,
        artifact_uri=extra.pop("artifact_uri", "gs://atalaya-artifacts/support-tone/run-1"),
        metrics=extra.pop("metrics", {"train_loss": 0.42, "validation_loss": 0.51}),
        hyperparameters={"rank": 8, "alpha": 16},
        dataset_uri=extra.pop("dataset_uri", "gs://atalaya-data/support/train.jsonl"),
        **extra,
    )


def test_an_engineer_registers_a_base_model_an_adapter_and_numbered_versions(
    world, adapter, enqueued, django_capture_on_commit_callbacks
):
    first = _version(world, adapter)
    with django_capture_on_commit_callbacks(execute=True):
        second = _version(world, adapter, artifact_uri="gs://atalaya-artifacts/support-tone/run-2")
    assert (first.number, second.number) == (1, 2)
    assert first.metrics == {"train_loss": 0.42, "validation_loss": 0.51}
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions[-4:] == [
        "registry.base_model_registered",
        "registry.adapter_created",
        "registry.version_registered",
        "registry.version_registered",
    ]
    # Each write asks the MLflow mirror to catch up, after the commit.
    assert ("workers.registry.mlflow_sync", ("version", second.pk)) in enqueued


@pytest.mark.parametrize("user", ["gov", "owner", "ann1", "fin_eng"])
def test_only_engineers_and_admins_of_the_team_register(world, gemma, user):
    with pytest.raises(PermissionDenied):
        adapter_create(actor=getattr(world, user), base_model=gemma, name="nope")
    with pytest.raises(PermissionDenied):
        base_model_register(
            actor=getattr(world, user), team=world.support, provider="vertex", model_id="x", context_window=1
        )


def test_the_same_model_or_adapter_name_twice_is_a_conflict(world, gemma, adapter):
    with pytest.raises(Conflict, match="already registered"):
        base_model_register(
            actor=world.eng,
            team=world.support,
            provider=Provider.HUGGING_FACE,
            model_id="google/gemma-3-1b-it",
            context_window=8192,
        )
    with pytest.raises(Conflict, match="already exists"):
        adapter_create(actor=world.eng, base_model=gemma, name="support-tone")


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"artifact_uri": "ftp://somewhere/x"}, "artifact_uri: use a URI starting with"),
        ({"artifact_uri": ""}, "artifact_uri: give a URI"),
        ({"metrics": {"loss": "low"}}, "metrics.loss: must be a finite number"),
        ({"metrics": {"loss": float("nan")}}, "metrics.loss: must be a finite number"),
        ({"dataset_uri": "my laptop"}, "dataset_uri: use a URI"),
    ],
)
def test_bad_versions_are_refused_with_a_precise_message(world, adapter, extra, message):
    with pytest.raises(Unprocessable, match=message):
        _version(world, adapter, **extra)
    assert not adapter.versions.exists()


def test_vertex_managed_tuning_needs_a_vertex_base_model(world, gemma):
    with pytest.raises(Unprocessable, match="Vertex AI base model"):
        adapter_create(actor=world.eng, base_model=gemma, name="gem", method=TuningMethod.VERTEX_SUPERVISED)


def test_an_alias_moves_only_when_governance_approves_and_never_by_its_requester(world, adapter):
    v1 = _version(world, adapter)
    result = alias_move_request(
        actor=world.eng, adapter=adapter, alias="champion", version_number=1, reason="best"
    )
    assert result.request.status == RequestStatus.OPEN
    assert not AdapterAlias.objects.exists()
    with pytest.raises(PermissionDenied):
        approval_decision_record(
            request_id=result.request.pk, reviewer=world.eng, decision="approve", comment=""
        )

    approval_decision_record(
        request_id=result.request.pk, reviewer=world.gov, decision="approve", comment="ok"
    )

    alias = AdapterAlias.objects.get(adapter=adapter, name="champion")
    assert alias.version == v1 and alias.moved_by == world.gov
    result.move.refresh_from_db()
    assert result.move.status == MoveStatus.APPLIED
    moved = AuditEvent.objects.filter(action="registry.alias_moved").get()
    assert moved.actor_username == "gov"
    assert moved.changes["to_version"] == 1 and moved.changes["requested_by"] == "eng"


def test_a_rejected_move_leaves_the_alias_where_it_was(world, adapter):
    _version(world, adapter)
    _version(world, adapter)
    first = alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=1)
    approval_decision_record(request_id=first.request.pk, reviewer=world.gov, decision="approve", comment="")
    second = alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=2)
    assert second.move.previous_version.number == 1
    approval_decision_record(
        request_id=second.request.pk, reviewer=world.gov, decision="reject", comment="worse"
    )
    assert AdapterAlias.objects.get(name="champion").version.number == 1
    second.move.refresh_from_db()
    assert second.move.status == MoveStatus.REJECTED
    assert AuditEvent.objects.filter(action="registry.alias_move_closed").exists()


def test_an_alias_is_taken_off_by_moving_it_to_no_version(world, adapter):
    _version(world, adapter)
    put = alias_move_request(actor=world.eng, adapter=adapter, alias="challenger", version_number=1)
    approval_decision_record(request_id=put.request.pk, reviewer=world.gov, decision="approve", comment="")
    off = alias_move_request(actor=world.eng, adapter=adapter, alias="challenger", version_number=None)
    approval_decision_record(request_id=off.request.pk, reviewer=world.gov, decision="approve", comment="")
    assert not AdapterAlias.objects.filter(name="challenger").exists()


def test_moves_that_change_nothing_or_wait_twice_are_conflicts(world, adapter):
    _version(world, adapter)
    with pytest.raises(Conflict, match="already points at no version"):
        alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=None)
    alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=1)
    with pytest.raises(Conflict, match="already waiting"):
        alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=1)
    with pytest.raises(NotFound, match="no version 9"):
        alias_move_request(actor=world.eng, adapter=adapter, alias="challenger", version_number=9)
    with pytest.raises(Unprocessable, match="alias:"):
        alias_move_request(actor=world.eng, adapter=adapter, alias="Not An Alias", version_number=1)
    assert AliasMove.objects.count() == 1
