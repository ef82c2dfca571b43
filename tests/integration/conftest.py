"""Real Celery workers for integration tests, on the test database and the test process's broker:
its embedded (filesystem) broker folder, or its own Redis database on the PostgreSQL + Redis pass."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection


class Worker:
    def __init__(
        self, tmp_path: Path, env: dict[str, str], pool: str, concurrency: int, name: str, beat: bool = False
    ):
        self.log_path = tmp_path / f"{name}.log"
        # With beat=True the worker also runs beat (-B), its schedule file in tmp_path.
        beat_args = ["-B", "-s", str(tmp_path / f"{name}-beat-schedule")] if beat else []
        self._log = open(self.log_path, "w+")  # noqa: SIM115
        celery = Path(sys.executable).parent / "celery"
        self.proc = subprocess.Popen(
            [
                str(celery),
                "-A",
                "console",
                "worker",
                f"--pool={pool}",
                f"--concurrency={concurrency}",
                "--loglevel=INFO",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-n",
                f"{name}-{os.getpid()}@%h",
                *beat_args,
            ],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.log_path.read_text()[-4000:]

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once: no chance to finish or acknowledge."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()


def test_database_url() -> str:
    """DATABASE_URL for a worker process: the database this test process runs on (pytest-django's
    test database, with its xdist suffix), on SQLite or PostgreSQL."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor == "postgresql":
        auth = ""
        if db.get("USER"):
            auth = quote(db["USER"], safe="")
            if db.get("PASSWORD"):
                auth += ":" + quote(db["PASSWORD"], safe="")
            auth += "@"
        host = db.get("HOST") or "127.0.0.1"
        port = f":{db['PORT']}" if db.get("PORT") else ""
        return f"postgres://{auth}{host}{port}/{quote(db['NAME'], safe='')}"
    raise pytest.UsageError(f"integration workers run on SQLite or PostgreSQL, not {connection.vendor}")


@pytest.fixture
def start_worker(tmp_path):
    workers: list[Worker] = []

    def start(pool: str = "solo", concurrency: int = 1, **extra_env: str) -> Worker:
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="console.settings.test",
            DATABASE_URL=test_database_url(),
            **extra_env,
        )
        worker = Worker(tmp_path, env, pool, concurrency, f"w{len(workers)}")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def wait_for(
    condition, worker: Worker, timeout: float = 45.0, what: str | Callable[[], str] = "condition"
) -> None:
    """Wait until condition() holds; `what` names it in the failure (a callable: computed at failure)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if worker.proc.poll() is not None:
            break
        time.sleep(0.2)
    described = what() if callable(what) else what
    pytest.fail(f"{described} not met; worker log:\n{worker.log()}")
