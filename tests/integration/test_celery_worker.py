"""A real Celery worker process (not eager mode) runs tasks through the embedded broker."""

import pytest

from apps.audit.models import AuditEvent, AuditVerification
from apps.workflows.models import ApprovalRequest, SubjectKind
from tests.factories import make_prompt, make_submitted, make_world
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(start_worker, tmp_path):
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    running = start_worker(
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(mail_dir)
    )
    running.mail_dir = mail_dir
    return running


def test_submitting_a_version_notifies_reviewers_through_a_real_worker(worker):
    world = make_world()
    world.gov.email = "gov@example.com"
    world.gov.save()
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)  # enqueues on commit
    request = ApprovalRequest.objects.get(subject_kind=SubjectKind.PROMPT_VERSION, object_id=version.pk)

    def notified():
        request.refresh_from_db()
        return request.reviewers_notified_at is not None

    wait_for(notified, worker, what="reviewers notified")
    mails = list(worker.mail_dir.iterdir())
    assert len(mails) == 1
    body = mails[0].read_text()
    assert "gov@example.com" in body
    assert "Review requested: support/greeting v1" in body


def test_scheduled_audit_verification_runs_in_the_worker(worker):
    from workers.audit import verify_chain

    world = make_world()
    make_submitted(make_prompt(world.support, world.eng), world.eng)
    verify_chain.delay()
    wait_for(lambda: AuditVerification.objects.exists(), worker, what="verification recorded")
    outcome = AuditVerification.objects.get()
    assert outcome.ok
    assert outcome.events_checked == AuditEvent.objects.count() == 4
