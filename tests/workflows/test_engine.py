import threading

import pytest
from django.db import connection

from apps.accounts.roles import Role
from apps.audit.models import AuditEvent
from apps.audit.services import audit_chain_verify
from apps.catalog.models import VersionStatus
from apps.common.exceptions import Conflict, NotFound, PermissionDenied
from apps.workflows.models import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    RequestStatus,
    SubjectKind,
)
from apps.workflows.selectors import review_queue
from apps.workflows.services import (
    approval_decision_record,
    approval_request_withdraw,
    approval_reviewers_notify,
)
from tests.factories import make_prompt, make_submitted, member


def _request_for(version):
    return ApprovalRequest.objects.get(object_id=version.pk, subject_kind=SubjectKind.PROMPT_VERSION)


@pytest.mark.parametrize("extra_roles", [(), (Role.GOVERNANCE,), (Role.ADMIN, Role.GOVERNANCE)])
def test_author_can_never_approve_their_own_version(world, extra_roles):
    member(world.eng, world.support, *extra_roles)
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    events_before = AuditEvent.objects.count()
    for decision in ("approve", "request_changes", "reject"):
        with pytest.raises(PermissionDenied) as refused:
            approval_decision_record(request_id=request.pk, reviewer=world.eng, decision=decision)
        assert refused.value.code == "self_approval"
        assert "someone else must review" in refused.value.message
    assert not ApprovalDecision.objects.exists()
    assert AuditEvent.objects.count() == events_before
    version.refresh_from_db()
    assert version.status == VersionStatus.IN_REVIEW


def test_only_the_approver_role_of_the_team_decides(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    for username in ("eng2", "owner", "admin"):
        with pytest.raises(PermissionDenied):
            approval_decision_record(
                request_id=request.pk, reviewer=world.users[username], decision="approve"
            )
    for username in ("ann1", "fin_gov"):  # cannot even see it
        with pytest.raises(NotFound):
            approval_decision_record(
                request_id=request.pk, reviewer=world.users[username], decision="approve"
            )
    assert not ApprovalDecision.objects.exists()


def test_reject_and_request_changes_close_the_request_and_move_the_version(world):
    prompt = make_prompt(world.support, world.eng)
    v1 = make_submitted(prompt, world.eng)
    approval_decision_record(
        request_id=_request_for(v1).pk,
        reviewer=world.gov,
        decision="request_changes",
        comment="Be more specific",
    )
    v1.refresh_from_db()
    assert v1.status == VersionStatus.CHANGES_REQUESTED
    assert _request_for(v1).status == RequestStatus.CHANGES_REQUESTED
    v2 = make_submitted(prompt, world.eng)
    approval_decision_record(request_id=_request_for(v2).pk, reviewer=world.gov, decision="reject")
    v2.refresh_from_db()
    assert v2.status == VersionStatus.REJECTED
    with pytest.raises(Conflict) as closed:
        approval_decision_record(request_id=_request_for(v2).pk, reviewer=world.gov2, decision="approve")
    assert closed.value.code == "request_closed"


def test_policy_requiring_two_approvals(world):
    ApprovalPolicy.objects.create(
        subject_kind=SubjectKind.PROMPT_VERSION, team=world.support, approvals_required=2
    )
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    approval_decision_record(request_id=request.pk, reviewer=world.gov, decision="approve")
    version.refresh_from_db()
    assert version.status == VersionStatus.IN_REVIEW
    with pytest.raises(Conflict) as twice:
        approval_decision_record(request_id=request.pk, reviewer=world.gov, decision="approve")
    assert twice.value.code == "already_decided"
    approval_decision_record(request_id=request.pk, reviewer=world.gov2, decision="approve")
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED


def test_review_queue_lists_what_the_user_can_decide(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    assert list(review_queue(user=world.gov)) == [request]
    assert list(review_queue(user=world.eng)) == []  # their own
    assert list(review_queue(user=world.owner)) == []  # not an approver
    assert list(review_queue(user=world.fin_gov)) == []  # other team
    approval_decision_record(request_id=request.pk, reviewer=world.gov, decision="approve")
    assert list(review_queue(user=world.gov2)) == []  # closed


def test_withdraw_returns_the_version_to_draft(world):
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    with pytest.raises(PermissionDenied):
        approval_request_withdraw(request_id=request.pk, actor=world.eng2)
    approval_request_withdraw(request_id=request.pk, actor=world.eng)
    version.refresh_from_db()
    assert version.status == VersionStatus.DRAFT
    assert _request_for(version).status == RequestStatus.WITHDRAWN


def test_reviewers_are_notified_once(world, mailoutbox, enqueued):
    world.gov.email, world.gov2.email = "gov@example.com", "gov2@example.com"
    world.gov.save(), world.gov2.save()
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    assert enqueued == []  # enqueued only on commit, and this test runs in a transaction
    assert approval_reviewers_notify(request_id=request.pk) == 2
    assert approval_reviewers_notify(request_id=request.pk) == 0  # a retried task sends nothing
    assert len(mailoutbox) == 1
    assert sorted(mailoutbox[0].to) == ["gov2@example.com", "gov@example.com"]
    assert f"/reviews/{request.pk}/" in mailoutbox[0].body


def test_notification_is_enqueued_after_commit(transactional_db, enqueued):
    from tests.factories import make_world

    world = make_world()
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    assert enqueued == [("workers.workflows.notify_reviewers", (_request_for(version).pk,))]


def _decide_concurrently(request_id, reviewers):
    barrier = threading.Barrier(len(reviewers))
    outcomes = {}

    def decide(user):
        try:
            barrier.wait(timeout=10)
            approval_decision_record(request_id=request_id, reviewer=user, decision="approve")
            outcomes[user.username] = "ok"
        except Conflict as exc:
            outcomes[user.username] = exc.code
        finally:
            connection.close()

    threads = [threading.Thread(target=decide, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return outcomes


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_approvals_are_serialised():
    from tests.factories import make_world

    world = make_world()
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    outcomes = _decide_concurrently(request.pk, [world.gov, world.gov2])
    assert sorted(outcomes.values()) == ["ok", "request_closed"]
    assert ApprovalDecision.objects.filter(request=request).count() == 1
    version.refresh_from_db()
    assert version.status == VersionStatus.APPROVED
    assert AuditEvent.objects.filter(action="catalog.version_approved").count() == 1
    assert audit_chain_verify().ok


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_with_two_required_both_count_once():
    from tests.factories import make_world

    world = make_world()
    ApprovalPolicy.objects.create(
        subject_kind=SubjectKind.PROMPT_VERSION, team=world.support, approvals_required=2
    )
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    request = _request_for(version)
    outcomes = _decide_concurrently(request.pk, [world.gov, world.gov2])
    assert outcomes == {"gov": "ok", "gov2": "ok"}
    request.refresh_from_db()
    assert request.status == RequestStatus.APPROVED
    assert (
        AuditEvent.objects.filter(action="workflows.request_closed", target_id=str(request.pk)).count() == 1
    )
    assert audit_chain_verify().ok


def test_policy_changes_are_audited_and_apply_to_new_requests(world):
    from apps.workflows.services import approval_policy_set

    approval_policy_set(
        actor=world.admin,
        subject_kind=SubjectKind.PROMPT_VERSION,
        team=world.support,
        approvals_required=2,
        approver_role=Role.GOVERNANCE,
    )
    approval_policy_set(
        actor=world.admin,
        subject_kind=SubjectKind.PROMPT_VERSION,
        team=world.support,
        approvals_required=3,
        approver_role=Role.GOVERNANCE,
    )
    assert ApprovalPolicy.objects.get(team=world.support).approvals_required == 3
    events = AuditEvent.objects.filter(action="workflows.policy_changed").order_by("sequence")
    assert [e.changes["to"]["approvals_required"] for e in events] == [2, 3]
    assert events[1].changes["from"]["approvals_required"] == 2
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)
    assert _request_for(version).approvals_required == 3
    with pytest.raises(Conflict):
        approval_policy_set(
            actor=world.admin,
            subject_kind=SubjectKind.PROMPT_VERSION,
            team=None,
            approvals_required=0,
            approver_role=Role.GOVERNANCE,
        )
