"""Carries the request id from a request into the Celery tasks it starts (and the tasks they start).

On publish the current request id goes into a message header; before the task runs, the worker sets the
request context from it, so the task's log lines and the audit events it records name the originating
request. Tasks started by beat carry none and run without a request context, as before.
"""

from typing import Any

from celery.signals import before_task_publish, task_postrun, task_prerun

from apps.common.middleware import (
    RequestContext,
    current_request_context,
    reset_request_context,
    set_request_context,
)

HEADER = "atalaya_request_id"

_tokens: dict[str, Any] = {}


def on_publish(headers: dict | None = None, **kwargs: Any) -> None:
    context = current_request_context()
    if context is not None and headers is not None and not headers.get(HEADER):
        headers[HEADER] = context.request_id


def _header_of(task: Any) -> str:
    request = task.request
    value = getattr(request, HEADER, None)  # a worker puts custom message headers on the request
    if not value and isinstance(getattr(request, "headers", None), dict):
        value = request.headers.get(HEADER)  # task.apply(headers=...) keeps them under `headers`
    return str(value)[:64] if value else ""


def on_prerun(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    if task is None or task_id is None:
        return
    request_id = _header_of(task)
    if not request_id:
        return
    context = RequestContext(request_id=request_id, extra={"via": "task", "task": task.name})
    _tokens[task_id] = set_request_context(context)


def on_postrun(task_id: str | None = None, **kwargs: Any) -> None:
    token = _tokens.pop(task_id, None) if task_id else None
    if token is not None:
        try:
            reset_request_context(token)
        except ValueError:  # set in another context: leave it, the next prerun replaces it
            set_request_context(None)


def connect() -> None:
    before_task_publish.connect(on_publish, weak=False, dispatch_uid="atalaya.request_id.publish")
    task_prerun.connect(on_prerun, weak=False, dispatch_uid="atalaya.request_id.prerun")
    task_postrun.connect(on_postrun, weak=False, dispatch_uid="atalaya.request_id.postrun")
