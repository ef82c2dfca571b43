"""Queueing work after a transaction commits, without letting a broker outage fail the request.

The rows a task works on are committed before the task is sent, and every such task has a beat job that
finds the rows left undone (log events still staged, approval requests whose reviewers were not told,
approved tuning requests without a job, registry rows MLflow lacks, budget alerts not sent). So when the
broker cannot take the message, the request has still succeeded: we log it and beat catches up.
"""

import logging
from collections.abc import Callable
from typing import Any

from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

logger = logging.getLogger(__name__)


def send_safely(send: Callable[[], Any], what: str) -> None:
    """Call `send` (one or more `task.delay(...)`); a broker outage is logged, not raised."""
    try:
        send()
    except (BrokerError, ConnectionError, OSError) as exc:
        logger.warning(
            "broker unavailable, %s left to beat: %s", what, exc, extra={"event": "enqueue_failed"}
        )


def enqueue_on_commit(task: Any, *args: Any) -> None:
    """`task.delay(*args)` once the current transaction commits (at once outside one)."""
    transaction.on_commit(lambda: send_safely(lambda: task.delay(*args), task.name))
