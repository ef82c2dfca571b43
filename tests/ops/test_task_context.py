import pytest
from celery import shared_task
from celery.app.task import Context
from django.db import transaction

from apps.audit.models import AuditEvent
from apps.audit.services import audit_event_record
from apps.common import task_context
from apps.common.middleware import (
    RequestContext,
    current_request_context,
    reset_request_context,
    set_request_context,
)


@shared_task(name="tests.ops.record_context")
def record_context() -> dict:
    context = current_request_context()
    with transaction.atomic():
        audit_event_record(actor=None, action="audit.chain_verified")
    return context.as_dict() if context else {}


def test_publishing_puts_the_request_id_in_the_headers():
    headers: dict = {}
    task_context.on_publish(headers=headers)
    assert task_context.HEADER not in headers  # no request: nothing to carry
    token = set_request_context(RequestContext(request_id="req-1"))
    try:
        task_context.on_publish(headers=headers)
    finally:
        reset_request_context(token)
    assert headers[task_context.HEADER] == "req-1"


def test_the_publish_hook_is_connected_to_celery():
    from celery.signals import before_task_publish

    headers: dict = {}
    token = set_request_context(RequestContext(request_id="req-2"))
    try:
        before_task_publish.send(sender="tests.ops.record_context", headers=headers, body=None)
    finally:
        reset_request_context(token)
    assert headers[task_context.HEADER] == "req-2"


@pytest.mark.django_db
def test_a_task_runs_with_the_request_id_of_its_message():
    """task.apply(headers=...) runs the task as a worker would, through task_prerun and task_postrun."""
    result = record_context.apply(headers={task_context.HEADER: "req-3"}).get()
    assert result == {"request_id": "req-3", "via": "task", "task": "tests.ops.record_context"}
    assert AuditEvent.objects.get().context["request_id"] == "req-3"
    assert current_request_context() is None  # restored after the task


@pytest.mark.django_db
def test_a_task_without_a_request_runs_as_the_system():
    assert record_context.apply().get() == {}
    assert AuditEvent.objects.get().context == {"via": "system"}


def test_a_worker_request_carries_the_header_as_an_attribute():
    """In a worker, custom message headers become attributes of task.request."""

    class FakeTask:
        name = "tests.fake"
        request = Context({"id": "t1", task_context.HEADER: "req-4"})

    task_context.on_prerun(task_id="t1", task=FakeTask())
    try:
        assert current_request_context().request_id == "req-4"
    finally:
        task_context.on_postrun(task_id="t1")
    assert current_request_context() is None


def test_a_published_message_carries_the_request_id():
    """Through Celery's real publish path, on an in-memory broker."""
    from kombu import Connection

    from console.celery import app

    token = set_request_context(RequestContext(request_id="req-5"))
    try:
        with Connection("memory://") as connection:
            record_context.apply_async(producer=app.amqp.Producer(connection))
            message = connection.SimpleQueue("celery").get(timeout=2)
    finally:
        reset_request_context(token)
    assert message.headers["task"] == "tests.ops.record_context"
    assert message.headers[task_context.HEADER] == "req-5"
