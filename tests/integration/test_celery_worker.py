"""A real Celery worker process (not eager mode) runs tasks through the embedded broker."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection

from apps.audit.models import AuditEvent, AuditVerification
from apps.workflows.models import ApprovalRequest, SubjectKind
from tests.factories import make_prompt, make_submitted, make_world

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path):
    """Start `celery worker` on the test database and the test process's broker folder."""
    mail_dir = tmp_path / "mail"
    mail_dir.mkdir()
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="console.settings.test",
        DATABASE_URL=f"sqlite:///{connection.settings_dict['NAME']}",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
    )
    celery = Path(sys.executable).parent / "celery"
    log = open(tmp_path / "worker.log", "w+")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            str(celery),
            "-A",
            "console",
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-n",
            f"test-{os.getpid()}@%h",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield {"mail_dir": mail_dir, "log": tmp_path / "worker.log", "proc": proc}
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    log.close()


def _wait_for(condition, worker, timeout=45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker["proc"].poll() is not None:
            break
        time.sleep(0.2)
    pytest.fail(f"condition not met; worker log:\n{worker['log'].read_text()[-4000:]}")


def test_submitting_a_version_notifies_reviewers_through_a_real_worker(worker):
    world = make_world()
    world.gov.email = "gov@example.com"
    world.gov.save()
    version = make_submitted(make_prompt(world.support, world.eng), world.eng)  # enqueues on commit
    request = ApprovalRequest.objects.get(subject_kind=SubjectKind.PROMPT_VERSION, object_id=version.pk)

    def notified():
        request.refresh_from_db()
        return request.reviewers_notified_at is not None

    _wait_for(notified, worker)
    mails = list(worker["mail_dir"].iterdir())
    assert len(mails) == 1
    body = mails[0].read_text()
    assert "gov@example.com" in body
    assert "Review requested: support/greeting v1" in body


def test_scheduled_audit_verification_runs_in_the_worker(worker):
    from workers.audit import verify_chain

    world = make_world()
    make_submitted(make_prompt(world.support, world.eng), world.eng)
    verify_chain.delay()
    _wait_for(lambda: AuditVerification.objects.exists(), worker)
    outcome = AuditVerification.objects.get()
    assert outcome.ok
    assert outcome.events_checked == AuditEvent.objects.count() == 4
