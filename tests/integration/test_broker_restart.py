"""Nothing lost when Redis restarts under a working worker: every accepted log event ends stored, redacted,
exactly once, and the worker reconnects by itself (or, where kombu's bug below stops it, is restarted as
Kubernetes would restart it, and still nothing is lost).

The test runs its own redis-server (a free port, a temporary folder: never the shared one) with the
persistence production needs (append-only file, fsync on every write), a real worker on it, and the real
pipeline: log batches through the API, scan tasks on the broker. In the middle of the scanning Redis is
killed (SIGKILL: no chance to save anything more) and started again on the same files. Messages still
queued come back from the append-only file; the ones the worker had taken (late acknowledgement) are
acknowledged after the reconnection or go back on the queue after the visibility timeout and run again,
which changes nothing (the scan is idempotent).

Under load (the suite running beside it on two cores), kombu 5.7 was seen to lose one scan task at the
reconnection: the queue and the unacknowledged set both empty, ten events still staged. The console's
safety net for exactly that is beat's re-dispatch of events staged longer than LOG_STAGED_GRACE_SECONDS
(deploy/README.md, "Failure modes"); the test runs it once the broker has drained, and still asserts that
every event ends stored exactly once.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis
from celery.app.task import Task
from django.test import override_settings
from rest_framework.test import APIClient

from apps.logs.models import EventState, LogEvent, LogFinding
from console.celery import app as celery_app
from tests.factories import make_token, make_world
from tests.integration.conftest import wait_for
from tests.logs.conftest import event

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
SLOW = "tests.logs.scanners.SlowScanner"
EVENTS = 400
CHUNK = 10  # 40 scan tasks of about half a second each
SHARED_PORTS = {6379, 6380}  # the usual and the shared Redis: never these


def _free_port() -> int:
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in SHARED_PORTS:
            return port


class RedisServer:
    """A redis-server of this test only, persisting every write to its append-only file."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir()
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.log = folder / "redis.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise pytest.UsageError(
                "redis-server is needed (apt-get install redis-server; .ci/run installs it)"
            )
        self.proc = subprocess.Popen(
            [
                executable,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--logfile", str(self.log),
                "--databases", "64",
            ],
            start_new_session=True,
        )  # fmt: skip
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"redis-server did not start:\n{self.log.read_text()[-2000:]}")

    def state(self, url: str) -> dict[str, int]:
        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        return {"queued": client.llen("celery"), "unacked": client.hlen("unacked")}

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def _beat_redispatch(broker_url: str, monkeypatch) -> int:
    """What beat's `workers.logs.dispatch_pending` does once the grace period is over, on this test's Redis."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from apps.logs.services import log_events_dispatch_pending

    publisher = celery_app.connection_for_write(broker_url)
    monkeypatch.setattr(
        Task, "delay", lambda self, *args, **kwargs: self.apply_async(args, kwargs, connection=publisher)
    )
    try:
        later = timezone.now() + timedelta(seconds=settings.LOG_STAGED_GRACE_SECONDS + 1)
        return log_events_dispatch_pending(now=later)
    finally:
        publisher.release()


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


def _worker_broker_url(url: str) -> str:
    """The database the worker will use: console.settings.test gives each xdist process its own."""
    from console.settings.test import _REDIS_SLOT, _redis_db

    return _redis_db(url, 2 * _REDIS_SLOT)


# kombu 5.7 (celery 5.7) can crash the worker on a lost connection: when the connection drops while the
# worker waits for a message and holds unacknowledged ones, closing the half-collected channel raises this
# (its transport's client is already gone) and the worker stops. Kubernetes and compose restart it; the
# messages it held go back on the queue after the visibility timeout. deploy/README.md, "Failure modes".
KOMBU_CLOSE_BUG = "Unrecoverable error: AttributeError(\"'NoneType' object has no attribute 'hostname'\")"


@override_settings(LOG_SCAN_CHUNK=CHUNK)
def test_redis_restarted_mid_scan_loses_no_task_and_stores_nothing_twice(
    redis_server, start_worker, monkeypatch
):
    broker_url = _worker_broker_url(redis_server.url)
    worker_env = {
        "PII_SCANNER": SLOW,
        "CELERY_BROKER_URL": redis_server.url,
        "CELERY_BROKER_VISIBILITY_TIMEOUT": "20",  # production: 1800 (console/settings/base.py)
    }
    worker = start_worker(pool="prefork", concurrency=2, **worker_env)
    wait_for(lambda: "ready." in worker.log(), worker, timeout=90, what="worker ready")

    # The batch API enqueues its scan tasks on this test's Redis (the rest of the suite has its own broker).
    publisher = celery_app.connection_for_write(broker_url)
    monkeypatch.setattr(
        Task, "delay", lambda self, *args, **kwargs: self.apply_async(args, kwargs, connection=publisher)
    )
    world = make_world()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(world.eng, world.support, 'logs:write')}")
    for start in range(0, EVENTS, 200):
        batch = [event(f"req-{i}") for i in range(start, start + 200)]
        response = client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": batch}), content_type="application/json"
        )
        assert response.json()["accepted"] == 200
    publisher.release()

    def stored() -> int:
        return LogEvent.objects.filter(state=EventState.STORED).count()

    wait_for(lambda: stored() >= 2 * CHUNK, worker, timeout=90, what="some events stored")
    redis_server.kill()  # in the middle: tasks running in the worker, others still queued
    partial = stored()
    assert partial < EVENTS, "the worker finished before the restart: nothing was tested"
    redis_server.start()

    # Wait for every event, restarting the worker if it exits, as Kubernetes or compose would; if the
    # broker has drained with events still staged (a task lost at the reconnection), beat's re-dispatch.
    crashed: list[str] = []
    deadline = time.monotonic() + 150
    drained_since: float | None = None
    redispatched = 0
    while stored() < EVENTS and time.monotonic() < deadline:
        if worker.proc.poll() is not None:
            crashed.append(worker.log_path.read_text())
            worker = start_worker(pool="prefork", concurrency=2, **worker_env)
        if redis_server.state(broker_url) == {"queued": 0, "unacked": 0}:
            drained_since = drained_since or time.monotonic()
            if not redispatched and time.monotonic() - drained_since > 5:
                redispatched = _beat_redispatch(broker_url, monkeypatch)
        else:
            drained_since = None
        time.sleep(0.2)
    assert stored() == EVENTS, (
        f"{stored()} of {EVENTS} stored; broker: {redis_server.state(broker_url)}; worker log:\n{worker.log()}"
    )
    if crashed:  # only ever for kombu's bug, once, at the connection loss
        assert len(crashed) == 1 and KOMBU_CLOSE_BUG in crashed[0], crashed[-1][-4000:]
    else:  # the same process reconnected by itself
        log = worker.log_path.read_text()
        assert log.count("Connected to redis://") >= 2, log[-4000:]
        assert worker.proc.poll() is None

    assert LogEvent.objects.count() == EVENTS
    assert not LogEvent.objects.exclude(state=EventState.STORED).exists()
    assert not LogEvent.objects.filter(staged_payload__isnull=False).exists()
    assert LogFinding.objects.count() == EVENTS  # one EMAIL_ADDRESS finding row per event, none twice
    sample = LogEvent.objects.get(request_id="req-7")
    assert sample.output == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
