from django.urls import reverse

from apps.accounts.roles import Role
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.catalog.models import PromptLabel, VersionStatus
from apps.catalog.services import prompt_label_set
from apps.workflows.models import ApprovalDecision, RequestStatus
from tests.factories import make_submitted, member

DECIDE_BUTTON = b'name="decision" value="approve"'


def version_url(catalog, number):
    return reverse("catalog:version", args=["support", catalog.prompt.name, number])


def test_queue_lists_what_the_reviewer_can_decide(world, catalog, client_as):
    body = client_as(world.gov).get(reverse("workflows:queue")).content.decode()
    assert "support/greeting v2" in body and "eng" in body
    assert reverse("workflows:request", args=[catalog.request.pk]) in body


def test_author_queue_shows_their_own_request_not_as_reviewable(world, catalog, client_as):
    body = client_as(world.eng).get(reverse("workflows:queue")).content.decode()
    assert "Nothing is waiting for your review." in body
    assert "support/greeting v2" in body  # under "Your open requests"


def test_reviewer_sees_the_decision_form(world, catalog, client_as):
    for url in (version_url(catalog, 2), reverse("workflows:request", args=[catalog.request.pk])):
        assert DECIDE_BUTTON in client_as(world.gov).get(url).content


def test_author_sees_no_approve_button_and_the_reason(world, catalog, client_as):
    for url in (version_url(catalog, 2), reverse("workflows:request", args=[catalog.request.pk])):
        body = client_as(world.eng).get(url).content
        assert DECIDE_BUTTON not in body
        assert b"You requested this change: someone else must review it" in body
        assert b"Withdraw request" in body


def test_author_holding_governance_is_still_refused(world, catalog, client_as):
    """Four eyes whatever the roles: an author who is also governance cannot approve their own version."""
    member(world.gov, world.support, Role.ENGINEER)
    user_forget_roles(world.gov)
    version = make_submitted(catalog.prompt, world.gov, message="by a governance engineer")
    request = version.prompt.versions.get(pk=version.pk)
    from apps.workflows.services import approval_subject_request

    approval = approval_subject_request(subject=request)
    client = client_as(world.gov)
    page = client.get(version_url(catalog, version.number)).content
    assert DECIDE_BUTTON not in page
    assert b"You requested this change" in page
    before = (AuditEvent.objects.count(), ApprovalDecision.objects.count())
    response = client.post(reverse("workflows:decide", args=[approval.pk]), {"decision": "approve"})
    assert response.status_code == 403
    assert b"four eyes" in response.content
    assert (AuditEvent.objects.count(), ApprovalDecision.objects.count()) == before
    version.refresh_from_db()
    assert version.status == VersionStatus.IN_REVIEW


def test_author_post_of_a_decision_is_refused_and_nothing_written(world, catalog, client_as):
    before = (AuditEvent.objects.count(), ApprovalDecision.objects.count())
    for decision in ("approve", "request_changes", "reject"):
        response = client_as(world.eng).post(
            reverse("workflows:decide", args=[catalog.request.pk]), {"decision": decision}
        )
        assert response.status_code == 403
    assert (AuditEvent.objects.count(), ApprovalDecision.objects.count()) == before
    catalog.in_review.refresh_from_db()
    assert catalog.in_review.status == VersionStatus.IN_REVIEW


def test_approve_from_the_version_page(world, catalog, client_as):
    response = client_as(world.gov).post(
        reverse("workflows:decide", args=[catalog.request.pk]),
        {"decision": "approve", "comment": "Looks right", "next": version_url(catalog, 2)},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == version_url(catalog, 2)
    body = response.content.decode()
    assert "You approved support/greeting v2." in body
    assert "Looks right" in body
    catalog.in_review.refresh_from_db()
    assert catalog.in_review.status == VersionStatus.APPROVED


def test_request_changes_and_reject(world, catalog, client_as):
    client_as(world.gov).post(
        reverse("workflows:decide", args=[catalog.request.pk]),
        {"decision": "request_changes", "comment": "Say hello first"},
    )
    catalog.in_review.refresh_from_db()
    assert catalog.in_review.status == VersionStatus.CHANGES_REQUESTED
    second = client_as(world.gov2).post(
        reverse("workflows:decide", args=[catalog.request.pk]), {"decision": "reject"}, follow=True
    )
    assert "already closed" in second.content.decode() or "already" in second.content.decode()


def test_offsite_next_is_ignored(world, catalog, client_as):
    response = client_as(world.gov).post(
        reverse("workflows:decide", args=[catalog.request.pk]),
        {"decision": "approve", "next": "https://evil.example/"},
    )
    assert response["Location"] == reverse("workflows:request", args=[catalog.request.pk])


def test_withdraw(world, catalog, client_as):
    client_as(world.eng).post(reverse("workflows:withdraw", args=[catalog.request.pk]))
    catalog.request.refresh_from_db()
    assert catalog.request.status == RequestStatus.WITHDRAWN


def test_label_move_request_page_shows_the_diff_and_applies_on_approval(world, catalog, client_as):
    from apps.workflows.services import approval_decision_record

    approval_decision_record(request_id=catalog.request.pk, reviewer=world.gov2, decision="approve")
    result = prompt_label_set(actor=world.eng, prompt=catalog.prompt, label="production", version_number=2)
    url = reverse("workflows:request", args=[result.request.pk])
    body = client_as(world.gov).get(url).content.decode()
    assert "Move production of support/greeting to v2" in body
    assert "What changes on production" in body
    assert "<del>support</del>" in body and "<ins>friendly</ins>" in body
    client_as(world.gov).post(reverse("workflows:decide", args=[result.request.pk]), {"decision": "approve"})
    assert PromptLabel.objects.get(name="production").version_id == catalog.in_review.pk
