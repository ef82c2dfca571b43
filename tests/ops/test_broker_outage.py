"""The broker down when a request queues work after its commit: the request still succeeds (the rows are
committed), the failure is logged, and beat queues the work again once the broker is back.

The outage is what Celery raises when Redis refuses the connection (kombu's OperationalError); the real
restart of a real Redis under a working worker is tests/integration/test_broker_restart.py."""

import json
import logging
from datetime import timedelta

import pytest
from celery.app.task import Task
from kombu.exceptions import OperationalError as BrokerError

from apps.logs.models import EventState, LogEvent
from apps.registry.services import adapter_create, base_model_register
from apps.tuning.models import TuningRequest, TuningStatus
from apps.tuning.services import tuning_request_create, tuning_request_submit
from apps.workflows.models import ApprovalRequest
from apps.workflows.services import approval_decision_record
from tests.factories import make_prompt, make_submitted, make_token


@pytest.fixture
def broker_down(monkeypatch):
    def refuse(self, *args, **kwargs):
        raise BrokerError("Error 111 connecting to 127.0.0.1:6380. Connection refused.")

    monkeypatch.setattr(Task, "delay", refuse)


def _broker_back(monkeypatch, sent):
    monkeypatch.setattr(Task, "delay", lambda self, *args, **kwargs: sent.append((self.name, args)))


def test_a_log_batch_is_accepted_and_beat_scans_it_later(
    world, api_as, monkeypatch, broker_down, caplog, django_capture_on_commit_callbacks
):
    client = api_as(token=make_token(world.eng, world.support, "logs:write"))
    event = {"request_id": "r1", "started_at": "2026-11-21T10:00:00Z", "model": "m", "input": "hello"}
    with (
        caplog.at_level(logging.WARNING, "apps.common.tasks"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": [event]}), content_type="application/json"
        )
    assert response.status_code == 202 and response.json()["accepted"] == 1
    assert LogEvent.objects.get().state == EventState.STAGED
    assert "broker unavailable" in caplog.text

    sent = []
    _broker_back(monkeypatch, sent)
    from workers.logs import dispatch_pending

    LogEvent.objects.update(received_at=LogEvent.objects.get().received_at - timedelta(minutes=5))
    dispatch_pending()
    assert [name for name, _ in sent] == ["workers.logs.scan_events"]


def test_reviewers_are_told_once_the_broker_is_back(
    world, monkeypatch, broker_down, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        version = make_submitted(make_prompt(world.support, world.eng), world.eng)  # no 500, no exception
    request = ApprovalRequest.objects.get(object_id=version.pk)
    ApprovalRequest.objects.filter(pk=request.pk).update(created_at=request.created_at - timedelta(minutes=2))

    sent = []
    _broker_back(monkeypatch, sent)
    from workers.workflows import notify_pending

    assert notify_pending() == 1
    assert sent == [("workers.workflows.notify_reviewers", (request.pk,))]


def test_an_approved_tuning_request_is_dispatched_by_the_poller_when_its_task_was_lost(
    world, monkeypatch, broker_down, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.LOCAL_JOBS_DIR = str(tmp_path)
    model = base_model_register(
        actor=world.eng, team=world.support, provider="hugging_face", model_id="tiny", context_window=512
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="a")
    request = tuning_request_create(
        actor=world.eng,
        adapter=adapter,
        train_dataset_uri="gs://x/t.jsonl",
        estimated_hours=1,
        justification="j",
    )
    with django_capture_on_commit_callbacks(execute=True):
        approval = tuning_request_submit(actor=world.eng, request=request)
        approval_decision_record(request_id=approval.pk, reviewer=world.gov, decision="approve", comment="")
    request.refresh_from_db()
    assert request.status == TuningStatus.APPROVED and request.job_name == ""

    sent = []
    _broker_back(monkeypatch, sent)
    from workers.tuning import poll_jobs

    assert poll_jobs()["redispatched"] == 0  # approved a moment ago: its own task may still come
    TuningRequest.objects.filter(pk=request.pk).update(decided_at=request.decided_at - timedelta(minutes=2))
    assert poll_jobs()["redispatched"] == 1
    assert ("workers.tuning.dispatch_job", (request.pk,)) in sent
