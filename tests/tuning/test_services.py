"""Tuning requests from draft to approval: validation with precise messages, the cost estimate from the
price table, the approval rules (four eyes, more approvals above a cost), and every illegal move refused."""

from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.common.exceptions import Conflict, PermissionDenied, Unprocessable
from apps.tuning.models import TUNING_TRANSITIONS, TuningRequest, TuningStatus
from apps.tuning.services import _move, tuning_request_cancel, tuning_request_create, tuning_request_submit
from apps.workflows.models import ApprovalRequest, RequestStatus, SubjectKind
from apps.workflows.services import approval_decision_record, approval_policy_set


def _draft(world, adapter, **extra):
    values = {
        "train_dataset_uri": "gs://atalaya-data/support/train.jsonl",
        "validation_dataset_uri": "gs://atalaya-data/support/validation.jsonl",
        "hyperparameters": {"rank": 16, "epochs": 2},
        "machine_type": "g2-standard-12",
        "accelerator_type": "NVIDIA_L4",
        "accelerator_count": 2,
        "estimated_hours": "3",
        "justification": "Answers drift from our tone.",
    }
    values.update(extra)
    return tuning_request_create(actor=world.eng, adapter=adapter, **values)


def test_a_draft_carries_defaults_and_the_cost_estimate(world, adapter, l4_price):
    request = _draft(world, adapter)
    assert request.status == TuningStatus.DRAFT
    assert request.hyperparameters == {
        "rank": 16,
        "alpha": 16.0,
        "dropout": 0.05,
        "epochs": 2,
        "learning_rate": 0.0002,
    }
    assert request.hourly_price == Decimal("0.70")
    assert request.estimated_cost == Decimal("4.20")  # 0.70 × 2 accelerators × 3 hours
    assert AuditEvent.objects.filter(action="tuning.request_created").count() == 1


def test_without_a_price_there_is_no_estimate(world, adapter):
    request = _draft(world, adapter, accelerator_type="NVIDIA_B200", accelerator_count=1)
    assert request.estimated_cost is None and request.hourly_price is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"train_dataset_uri": ""}, "train_dataset_uri: give the dataset's URI"),
        ({"train_dataset_uri": "ftp://x/train.jsonl"}, "train_dataset_uri: a JSONL dataset at"),
        ({"hyperparameters": {"rank": 0}}, r"hyperparameters.rank: a whole number from 1 to 512"),
        ({"hyperparameters": {"rank": 8.5}}, r"hyperparameters.rank: a whole number"),
        ({"hyperparameters": {"dropout": 1.5}}, r"hyperparameters.dropout: a number from 0.0 to 0.99"),
        ({"hyperparameters": {"temperature": 1}}, r"hyperparameters.temperature: not a parameter of LoRA"),
        ({"accelerator_count": 0}, "accelerator_type and accelerator_count go together"),
        ({"accelerator_count": 17}, "accelerator_count: 0 to 16"),
        ({"estimated_hours": "0"}, "estimated_hours: from 0.01"),
        ({"estimated_hours": "lots"}, "estimated_hours: from 0.01"),
        ({"justification": "  "}, "justification: say why"),
    ],
)
def test_bad_requests_are_refused_with_a_precise_message(world, adapter, extra, message):
    with pytest.raises(Unprocessable, match=message):
        _draft(world, adapter, **extra)
    assert not TuningRequest.objects.exists()


def test_managed_tuning_takes_its_own_parameters_and_no_hardware(world, gemini_adapter):
    with pytest.raises(Unprocessable, match="chooses its own hardware"):
        _draft(world, gemini_adapter)
    request = _draft(
        world,
        gemini_adapter,
        machine_type="",
        accelerator_type="",
        accelerator_count=0,
        hyperparameters={"epochs": 3, "learning_rate_multiplier": 1.0},
    )
    assert request.hyperparameters == {"epochs": 3, "learning_rate_multiplier": 1.0}
    with pytest.raises(Unprocessable, match=r"hyperparameters\.rank: not a parameter of Vertex managed"):
        _draft(
            world,
            gemini_adapter,
            accelerator_type="",
            accelerator_count=0,
            machine_type="",
            hyperparameters={"rank": 8},
        )


@pytest.mark.parametrize("user", ["gov", "owner", "ann1", "fin_eng"])
def test_only_engineers_and_admins_of_the_team_file_requests(world, adapter, user):
    with pytest.raises(PermissionDenied):
        tuning_request_create(
            actor=getattr(world, user),
            adapter=adapter,
            train_dataset_uri="gs://x/train.jsonl",
            justification="x",
            estimated_hours=1,
        )


def test_submitted_it_waits_for_governance_and_its_requester_cannot_approve(world, adapter, l4_price):
    request = _draft(world, adapter)
    approval = tuning_request_submit(actor=world.eng, request=request)
    request.refresh_from_db()
    assert request.status == TuningStatus.PENDING_APPROVAL and request.estimated_cost == Decimal("4.20")
    assert approval.subject_kind == SubjectKind.TUNING_REQUEST and approval.approvals_required == 1
    assert "~4.20 USD" in approval.summary
    with pytest.raises(PermissionDenied):
        approval_decision_record(request_id=approval.pk, reviewer=world.eng, decision="approve", comment="")
    with pytest.raises(Conflict, match="cannot become pending approval"):
        tuning_request_submit(actor=world.eng, request=request)


def test_approval_moves_it_to_approved_and_queues_the_dispatch(
    world, adapter, enqueued, django_capture_on_commit_callbacks
):
    approval = tuning_request_submit(actor=world.eng, request=_draft(world, adapter))
    with django_capture_on_commit_callbacks(execute=True):
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="ok")
    request = TuningRequest.objects.get()
    assert request.status == TuningStatus.APPROVED and request.decided_at is not None
    assert ("workers.tuning.dispatch_job", (request.pk,)) in enqueued


def test_a_policy_asks_two_approvals_above_a_cost(world, adapter, l4_price):
    approval_policy_set(
        actor=None,
        subject_kind=SubjectKind.TUNING_REQUEST,
        team=world.support,
        approvals_required=1,
        approver_role="governance",
        cost_threshold=Decimal("10"),
        approvals_above_threshold=2,
    )
    cheap = tuning_request_submit(actor=world.eng, request=_draft(world, adapter))
    assert cheap.approvals_required == 1  # 4.20 ≤ 10
    costly = tuning_request_submit(actor=world.eng, request=_draft(world, adapter, estimated_hours="20"))
    assert costly.approvals_required == 2  # 28.00 > 10
    approval_decision_record(request_id=costly.pk, reviewer=world.gov, decision="approve", comment="")
    assert TuningRequest.objects.get(pk=costly.object_id).status == TuningStatus.PENDING_APPROVAL
    approval_decision_record(request_id=costly.pk, reviewer=world.gov2, decision="approve", comment="")
    assert TuningRequest.objects.get(pk=costly.object_id).status == TuningStatus.APPROVED


def test_rejection_ends_it_and_changes_requested_sends_it_back_to_draft(world, adapter):
    first = tuning_request_submit(actor=world.eng, request=_draft(world, adapter))
    approval_decision_record(request_id=first.pk, reviewer=world.gov, decision="reject", comment="too big")
    assert TuningRequest.objects.get(pk=first.object_id).status == TuningStatus.REJECTED

    second = tuning_request_submit(actor=world.eng, request=_draft(world, adapter))
    approval_decision_record(
        request_id=second.pk, reviewer=world.gov, decision="request_changes", comment="smaller"
    )
    request = TuningRequest.objects.get(pk=second.object_id)
    assert request.status == TuningStatus.DRAFT
    again = tuning_request_submit(actor=world.eng, request=request)  # and it can be submitted again
    assert again.status == RequestStatus.OPEN


def test_cancelling_a_draft_or_a_pending_request(world, adapter):
    draft = tuning_request_cancel(actor=world.eng, request=_draft(world, adapter))
    assert draft.status == TuningStatus.CANCELLED
    pending = _draft(world, adapter)
    approval = tuning_request_submit(actor=world.eng, request=pending)
    cancelled = tuning_request_cancel(actor=world.eng, request=pending)
    assert cancelled.status == TuningStatus.CANCELLED
    assert ApprovalRequest.objects.get(pk=approval.pk).status == RequestStatus.WITHDRAWN
    with pytest.raises(Conflict, match="cannot become cancelled"):
        tuning_request_cancel(actor=world.eng, request=cancelled)


ALL = [s.value for s in TuningStatus]


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_every_move_the_lifecycle_does_not_list_is_refused(source, target):
    request = TuningRequest(status=source)
    if target in TUNING_TRANSITIONS[source]:
        assert _move(request, target) == source and request.status == target
    else:
        with pytest.raises(Conflict) as refused:
            _move(request, target)
        assert refused.value.code == "invalid_transition" and request.status == source


def test_the_seeded_price_table_gives_an_estimate_out_of_the_box(world, adapter):
    """Migration 0002 seeds approximate Vertex accelerator prices (editable on the Prices page). Seeded again
    here: a browser test (transactional) earlier in this process may have flushed them."""
    import importlib

    from django.apps import apps

    importlib.import_module("apps.tuning.migrations.0002_seed_accelerator_prices").seed(apps, None)
    request = _draft(
        world, adapter, accelerator_type="NVIDIA_TESLA_A100", accelerator_count=2, estimated_hours="5"
    )
    assert request.hourly_price == Decimal("3.37") and request.estimated_cost == Decimal("33.70")
