"""Log records as JSON lines (LOG_FORMAT=json), carrying the request id of the request or the task.

Imported while settings configure logging: it must not import models.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from apps.common.middleware import current_request_context

# Attributes every LogRecord has: the rest came from `extra=` and are written as fields.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class RequestIdFilter(logging.Filter):
    """Stamps record.request_id from the current request (or the task that a request started)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            context = current_request_context()
            record.request_id = context.request_id if context else ""
        return True


def _current_task() -> Any:
    try:
        from celery import current_task
    except ImportError:  # pragma: no cover
        return None
    task = current_task
    return task if task and getattr(task.request, "id", None) else None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, the task when in one, the
    fields given with `extra=`, and the exception when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        if request_id is None:
            context = current_request_context()
            request_id = context.request_id if context else ""
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id or None,
        }
        task = _current_task()
        if task is not None:
            data["task_id"] = task.request.id
            data["task_name"] = task.name
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in data:
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            data["exception"] = record.exc_text
        if record.stack_info:
            data["stack"] = self.formatStack(record.stack_info)
        return json.dumps(data, default=str, ensure_ascii=False)
