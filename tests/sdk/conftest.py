"""A live console for the SDK tests: the embedded default (SQLite, filesystem broker, local PII scanner)
in a temporary folder, served by gunicorn with a real Celery worker, as `make run` and bench/ingest.py
run it. One per test session (per xdist worker); tests may stop and restart its web server on the
same port, and use their own request ids, prompts and spill folders, so they do not see each other."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

GREETING = [
    {"role": "system", "content": "You greet people for {{ company }}."},
    {
        "role": "user",
        "content": "Say hello to {{ name }}{% if vip %}, our VIP{% endif %}."
        "{% for item in items %}\n- {{ item | upper }}{% endfor %}",
    },
]

SETUP = """
import json, sys
from decimal import Decimal
from apps.accounts.models import User
from apps.accounts.services import team_create, membership_grant, token_create
from apps.catalog.services import prompt_create, prompt_version_create, prompt_version_submit, prompt_label_set
from apps.workflows.services import approval_decision_record
from apps.costs.models import BudgetState
from apps.costs.services import budget_create

spec = json.loads(sys.stdin.read())
team = team_create(actor=None, slug="sdk", name="SDK")
author = User.objects.create_user("author", password="author-password-1")
reviewer = User.objects.create_user("reviewer", password="reviewer-password-1")
membership_grant(actor=None, user=author, team=team, role="engineer")
membership_grant(actor=None, user=reviewer, team=team, role="governance")
membership_grant(actor=None, user=reviewer, team=team, role="admin")
versions = {}
for name, messages in spec["prompts"].items():
    prompt = prompt_create(actor=author, team=team, name=name)
    version = prompt_version_create(
        actor=author, prompt=prompt, messages=messages, model="gemini-2.5-flash",
        parameters={"temperature": 0.2, "max_output_tokens": 256}, message="first",
    )
    request = prompt_version_submit(actor=author, version=version)
    approval_decision_record(request_id=request.pk, reviewer=reviewer, decision="approve", comment="ok")
    prompt_label_set(actor=reviewer, prompt=prompt, label="production", version_number=version.number)
budget = budget_create(
    actor=reviewer, team=team, name="capped-app monthly", amount=Decimal("10"), hard_limit=True, app="capped-app"
)
BudgetState.objects.filter(budget=budget).update(exhausted=True, spend=Decimal("12.5"))
scopes = ["prompts:read", "prompts:write", "logs:write", "feedback:write"]
print(token_create(actor=author, user=author, team=team, name="sdk-tests", scopes=scopes)[1])
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveConsole:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = workdir / "atalaya.sqlite3"
        env = {
            k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}
        }
        self.env = env | {
            "DJANGO_SETTINGS_MODULE": "console.settings.local",
            "DJANGO_DEBUG": "false",
            "ATALAYA_VAR_DIR": str(workdir),
            "PII_SCANNER": "local",
            "LOG_LEVEL": "WARNING",
            "ATALAYA_API_RATE_LIMIT": "1000000000/min",
            "ATALAYA_API_WRITE_RATE_LIMIT": "1000000000/min",
        }
        self.token = ""
        self.web: subprocess.Popen | None = None
        self.worker: subprocess.Popen | None = None
        self._log = open(workdir / "processes.log", "a")  # noqa: SIM115

    def manage(self, *args: str, stdin: str | None = None) -> str:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def prepare(self) -> None:
        self.manage("migrate", "--no-input", "-v0")
        spec = {"prompts": {"greeting": [{"role": m["role"], "template": m["content"]} for m in GREETING]}}
        self.token = self.manage("shell", "-c", SETUP, stdin=json.dumps(spec)).strip().splitlines()[-1]

    def _spawn(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_web(self) -> None:
        self.web = self._spawn(
            str(BIN / "gunicorn"), "console.wsgi", "-b", f"127.0.0.1:{self.port}", "-w", "2",
            "--keep-alive", "30", "--log-level", "warning",
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start:\n{self.log()}")

    def start_worker(self) -> None:
        self.worker = self._spawn(
            str(BIN / "celery"), "-A", "console", "worker", "--pool=solo", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        )  # fmt: skip

    @staticmethod
    def _stop(proc: subprocess.Popen | None) -> None:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def stop_web(self) -> None:
        self._stop(self.web)
        self.web = None

    def stop(self) -> None:
        self.stop_web()
        self._stop(self.worker)
        self._log.close()

    def log(self) -> str:
        return (self.workdir / "processes.log").read_text()[-3000:]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as conn:
            return conn.execute(sql, params).fetchall()

    def rows_per_request_id(self, prefix: str) -> dict[str, int]:
        """How many log rows each request id starting with `prefix` has (staged, stored or quarantined)."""
        rows = self.query(
            "SELECT request_id, COUNT(*) FROM logs_logevent WHERE request_id LIKE ? GROUP BY request_id",
            (prefix.replace("%", "") + "%",),
        )
        return dict(rows)

    def stored(self, prefix: str) -> int:
        return self.query(
            "SELECT COUNT(*) FROM logs_logevent WHERE request_id LIKE ? AND state = 'stored'", (prefix + "%",)
        )[0][0]

    def wait_stored(self, prefix: str, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.stored(prefix) >= count:
                return
            time.sleep(0.2)
        pytest.fail(f"{count} events with ids {prefix}* not stored in {timeout} s; log:\n{self.log()}")


@pytest.fixture(scope="session")
def live_console(tmp_path_factory) -> Iterator[LiveConsole]:
    console = LiveConsole(tmp_path_factory.mktemp("live-console"))
    try:
        console.prepare()
        console.start_worker()
        console.start_web()
        yield console
    finally:
        console.stop()


@pytest.fixture
def console(live_console: LiveConsole) -> Iterator[LiveConsole]:
    """The live console, its web server running (restarted after a test that stopped it)."""
    if live_console.web is None:
        live_console.start_web()
    yield live_console
    if live_console.web is None:
        live_console.start_web()
