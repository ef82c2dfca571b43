#!/usr/bin/env python3
"""A mixed load against gunicorn, on PostgreSQL and Redis and on the embedded default, side by side.

    .venv/bin/python bench/load.py                       # 60 s on each backend (or: make bench-load)
    .venv/bin/python bench/load.py --duration 20 --only embedded

The mix (issue 7): 80 % prompt resolutions (GET /api/v1/prompts/<name>/resolve with a token), 15 % log
batches (POST /api/v1/logs/batch, 20 events of about 1 KB each, every request id new), 5 % costs
dashboards (GET /costs/?range=30d, signed in as a product owner, over 30 days of usage rollups).

What one run does, for each backend in turn, on loopback only:

1. A fresh console in a temporary ATALAYA_VAR_DIR with production-like settings (console.settings.local,
   DJANGO_DEBUG=false):
   - embedded: SQLite, the filesystem broker, the per-process cache;
   - postgres: a new database on the PostgreSQL server of DATABASE_URL, Redis databases of
     CELERY_BROKER_URL as the Celery broker and the Django cache (emptied first). Without those
     variables, `.ci/services` starts both on loopback (as `make test-postgres` does; it needs root).
   Then: migrate, collectstatic; a team with an engineer, a governance user and a product owner; five prompts
   written, approved and put on `production` through the services; a token with `prompts:read` and
   `logs:write`; 200,000 synthetic events over 30 days for the dashboard (`seed_usage`).
2. gunicorn with 2 sync workers (deploy/gunicorn.conf.py, as the image runs it) and a real Celery worker
   (prefork, 2 processes) that scans, redacts and stores the log batches while the load runs.
3. The load: --processes client processes with --threads closed-loop clients each, for --duration
   seconds after a --warmup; each request picks its kind at random with the weights above. A request is
   an error unless it gets the answer a client expects (200 for resolve and dashboard, 202 with every
   event accepted for a batch). Latency is per request, from sending to the last byte read.
4. Afterwards, every accepted event must end up stored (redacted), once: the run waits for the worker
   to drain the queue, then counts stored rows and distinct request ids.

Printed: per backend and per kind of request, count, throughput, p50/p95/p99 and errors; events accepted
and stored; then the ratio of the two backends' throughput. The exit status is 0 when both backends
answered with zero errors and stored every accepted event.

The API rate limits are raised for the run (ATALAYA_API_RATE_LIMIT): the benchmark measures the
server, and one token sends every request.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing as mp
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent

WEIGHTS = {"resolve": 80, "batch": 15, "dashboard": 5}
EXPECTED = {"resolve": 200, "batch": 202, "dashboard": 200}
PROMPTS = [f"bench-prompt-{n}" for n in range(5)]
BATCH_EVENTS = 20
PASSWORD = "bench-only-password"


def log(message: str) -> None:
    print(f"[load {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------------
# One console: settings, set-up, processes


SETUP = """
import json
from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.accounts.services import membership_grant, team_create, token_create
from apps.catalog.services import prompt_create, prompt_label_set, prompt_version_create, prompt_version_submit
from apps.workflows.services import approval_decision_record

team = team_create(actor=None, slug="support", name="Support")
eng = User.objects.create_user("eng", password=PASSWORD)
gov = User.objects.create_user("gov", password=PASSWORD)
owner = User.objects.create_user("owner", password=PASSWORD)
membership_grant(actor=None, user=eng, team=team, role=Role.ENGINEER)
membership_grant(actor=None, user=gov, team=team, role=Role.GOVERNANCE)
membership_grant(actor=None, user=owner, team=team, role=Role.PRODUCT_OWNER)
for name in PROMPTS:
    prompt = prompt_create(actor=eng, team=team, name=name, description="Benchmark prompt")
    version = prompt_version_create(
        actor=eng,
        prompt=prompt,
        messages=[
            {"role": "system", "template": "You are the support assistant of {{ company }}."},
            {"role": "user", "template": "{{ customer }} writes: {{ question }}"},
        ],
        model="gemini-2.5-flash",
        parameters={"temperature": 0.2},
        message="first",
    )
    request = prompt_version_submit(actor=eng, version=version)
    approval_decision_record(request_id=request.pk, reviewer=gov, decision="approve", comment="ok")
    prompt_label_set(actor=gov, prompt=prompt, label="production", version_number=version.number)
_, token = token_create(actor=eng, user=eng, team=team, name="bench", scopes=["prompts:read", "logs:write"])
print(json.dumps({"token": token}))
"""

COUNT = """
import json
from django.db.models import Count
from apps.logs.models import LogEvent
rows = LogEvent.objects.filter(request_id__startswith="load-")
print(json.dumps({
    "states": dict(rows.values_list("state").annotate(n=Count("pk")).order_by()),
    "distinct": rows.values("request_id").distinct().count(),
}))
"""


@dataclass
class Backend:
    name: str
    workdir: Path
    env: dict[str, str]
    describe: str
    cleanup: list[Any] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)
    port: int = 0

    def manage(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"manage.py {args[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def shell(self, script: str, **names: Any) -> dict:
        prelude = "".join(f"{key} = {value!r}\n" for key, value in names.items())
        out = self.manage("shell", "-c", prelude + script)
        return json.loads(out.strip().splitlines()[-1])

    def prepare(self, usage_events: int) -> str:
        log(f"{self.name}: migrate and seed")
        self.manage("migrate", "--no-input", "-v0")
        self.manage("collectstatic", "--no-input", "-v0")
        token = self.shell(SETUP, PASSWORD=PASSWORD, PROMPTS=PROMPTS)["token"]
        self.manage("seed_usage", "--events", str(usage_events), "--team", "support", "--days", "30")
        return token

    def start(self) -> None:
        self.port = free_port()
        out = open(self.workdir / "processes.log", "ab")  # noqa: SIM115
        common = {"cwd": ROOT, "env": self.env, "stdout": out, "stderr": subprocess.STDOUT}
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "console.wsgi",
                    "-c",
                    str(ROOT / "deploy" / "gunicorn.conf.py"),
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "-w",
                    "2",
                    "--worker-class",
                    "sync",
                    "--log-level",
                    "warning",
                ],
                start_new_session=True,
                **common,
            )
        )
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "celery"),
                    "-A",
                    "console",
                    "worker",
                    "--pool=prefork",
                    "--concurrency=2",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                start_new_session=True,
                **common,
            )
        )
        out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start:\n{(self.workdir / 'processes.log').read_text()[-3000:]}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        self.procs.clear()
        for undo in reversed(self.cleanup):
            with contextlib.suppress(Exception):
                undo()
        self.cleanup.clear()


def base_env(workdir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="console.settings.local",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        ATALAYA_VAR_DIR=str(workdir),
        PII_SCANNER="local",
        LOG_LEVEL="WARNING",
        ATALAYA_API_RATE_LIMIT="1000000/min",
        ATALAYA_API_WRITE_RATE_LIMIT="1000000/min",
        PROMETHEUS_MULTIPROC_DIR=str(workdir / "prometheus"),
    )
    (workdir / "prometheus").mkdir(exist_ok=True)
    return env


def embedded_backend(workdir: Path) -> Backend:
    return Backend("embedded", workdir, base_env(workdir), "SQLite, filesystem broker, per-process cache")


def services_urls() -> tuple[str, str]:
    database = os.environ.get("DATABASE_URL", "")
    broker = os.environ.get("CELERY_BROKER_URL", "")
    if database.startswith("postgres") and broker.startswith("redis"):
        return database, broker
    log("DATABASE_URL/CELERY_BROKER_URL not set: starting PostgreSQL and Redis with .ci/services")
    out = subprocess.run([str(ROOT / ".ci" / "services")], capture_output=True, text=True, check=True).stdout
    found = dict(re.findall(r"export (\w+)=(\S+)", out))
    return found["DATABASE_URL"], found["CELERY_BROKER_URL"]


def postgres_backend(workdir: Path) -> Backend:
    import psycopg
    import redis

    database_url, broker_url = services_urls()
    parsed = urllib.parse.urlsplit(database_url)
    name = f"atalaya_load_{os.getpid()}"
    admin = psycopg.connect(database_url, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    redis_url = urllib.parse.urlsplit(broker_url)
    broker_db, cache_db = 40, 41  # apart from the databases the test suite uses
    client = redis.Redis(host=redis_url.hostname, port=redis_url.port or 6379)
    for db in (broker_db, cache_db):
        redis.Redis(host=redis_url.hostname, port=redis_url.port or 6379, db=db).flushdb()
    env = base_env(workdir)
    env.update(
        DATABASE_URL=urllib.parse.urlunsplit(parsed._replace(path=f"/{name}")),
        CELERY_BROKER_URL=f"redis://{redis_url.hostname}:{redis_url.port or 6379}/{broker_db}",
        CACHE_URL=f"redis://{redis_url.hostname}:{redis_url.port or 6379}/{cache_db}",
    )
    version = admin.execute("SHOW server_version").fetchone()[0]
    redis_version = client.info("server")["redis_version"]
    backend = Backend(
        "postgres", workdir, env, f"PostgreSQL {version.split()[0]}, Redis {redis_version} broker and cache"
    )

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        for db in (broker_db, cache_db):
            redis.Redis(host=redis_url.hostname, port=redis_url.port or 6379, db=db).flushdb()

    backend.cleanup.append(drop)
    return backend


# --------------------------------------------------------------------------------------------------
# The load generator: runs in child processes


def sign_in(port: int, username: str = "owner") -> str:
    """The session cookie of a user (the product owner by default), through the sign-in form."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/accounts/login/")
    response = conn.getresponse()
    page = response.read().decode()
    found = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    if response.status != 200 or not found:
        raise RuntimeError(f"sign-in page: HTTP {response.status} {page[:300]!r}")
    csrf = found.group(1)
    cookie = re.search(r"csrftoken=([^;]+)", response.getheader("Set-Cookie", "")).group(1)
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": csrf, "username": username, "password": PASSWORD})
    conn.request(
        "POST",
        "/accounts/login/",
        body=body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Cookie": f"csrftoken={cookie}",
            "Referer": f"http://127.0.0.1:{port}/accounts/login/",
        },
    )
    response = conn.getresponse()
    response.read()
    cookies = "; ".join(
        value.split(";", 1)[0] for key, value in response.getheaders() if key.lower() == "set-cookie"
    )
    if response.status != 302 or "sessionid=" not in cookies:
        raise RuntimeError(f"sign-in failed: HTTP {response.status}")
    return cookies


def batch_body(prefix: str, n: int) -> bytes:
    events = []
    for i in range(BATCH_EVENTS):
        events.append(
            {
                "request_id": f"load-{prefix}-{n:06d}-{i:02d}",
                "started_at": "2026-11-21T10:00:00Z",
                "ended_at": "2026-11-21T10:00:01.2Z",
                "app": "support-bot",
                "prompt": PROMPTS[i % len(PROMPTS)],
                "prompt_version": 1,
                "model": "gemini-2.5-flash",
                "input": [
                    {"role": "system", "content": "You are the support assistant of Acme."},
                    {
                        "role": "user",
                        "content": f"Hello, I am Maria Lopez (maria.lopez{n}@example.com, +34 612 345 {i:03d}). "
                        "My order arrived broken and I would like to know how to return it. " * 4,
                    },
                ],
                "output": "Sorry to hear that. You can return it from your account page within 30 days; "
                "a courier collects it at no cost. " * 3,
                "tokens_in": 812,
                "tokens_out": 95,
                "latency_ms": 1180,
                "status": "ok",
                "end_user": f"user-{n % 997}",
            }
        )
    return json.dumps({"events": events}).encode()


def client_process(
    index: int,
    port: int,
    token: str,
    cookie: str,
    threads: int,
    start_at: float,
    end_at: float,
    seed: int,
    out,
) -> None:
    import threading

    results: list[tuple[str, float, float, bool]] = []  # kind, started, seconds, ok
    errors: list[str] = []
    accepted = [0]
    lock = threading.Lock()

    def worker(t: int) -> None:
        rng = random.Random(seed * 1000 + index * 100 + t)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        kinds, weights = zip(*WEIGHTS.items(), strict=True)
        n = 0
        local: list[tuple[str, float, float, bool]] = []
        got = 0
        while time.time() < end_at:
            kind = rng.choices(kinds, weights)[0]
            n += 1
            if kind == "resolve":
                method, path, body = "GET", f"/api/v1/prompts/{rng.choice(PROMPTS)}/resolve", None
                headers = {"Authorization": f"Bearer {token}"}
            elif kind == "batch":
                method, path = "POST", "/api/v1/logs/batch"
                body = batch_body(f"{index}x{t}", n)
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            else:
                method, path, body = "GET", "/costs/?range=30d", None
                headers = {"Cookie": cookie}
            started = time.time()
            ok = False
            try:
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                ok = response.status == EXPECTED[kind]
                if ok and kind == "batch":
                    answer = json.loads(payload)
                    got += answer.get("accepted", 0)
                    ok = answer.get("accepted") == BATCH_EVENTS
                if not ok and len(errors) < 20:
                    errors.append(f"{kind}: HTTP {response.status} {payload[:200]!r}")
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if len(errors) < 20:
                    errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            local.append((kind, started, time.time() - started, ok))
        conn.close()
        with lock:
            results.extend(local)
            accepted[0] += got

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    out.put({"results": results, "errors": errors, "accepted": accepted[0]})


# --------------------------------------------------------------------------------------------------
# Measuring and reporting


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(backend: Backend, args: argparse.Namespace) -> dict[str, Any]:
    token = backend.prepare(args.usage_events)
    backend.start()
    try:
        cookie = sign_in(backend.port)
        ctx = mp.get_context("spawn")
        queue = ctx.Queue()
        start_at = time.time() + 1
        measure_from = start_at + args.warmup
        end_at = measure_from + args.duration
        log(f"{backend.name}: load for {args.warmup + args.duration:.0f} s ({args.warmup:.0f} s warm-up)")
        procs = [
            ctx.Process(
                target=client_process,
                args=(i, backend.port, token, cookie, args.threads, start_at, end_at, args.seed, queue),
            )
            for i in range(args.processes)
        ]
        for proc in procs:
            proc.start()
        parts = [queue.get(timeout=args.warmup + args.duration + 300) for _ in procs]
        for proc in procs:
            proc.join()
        accepted = sum(part["accepted"] for part in parts)
        log(f"{backend.name}: {accepted:,} events accepted; waiting for the worker to store them")
        deadline = time.monotonic() + args.drain_timeout
        drain_started = time.monotonic()
        counted = backend.shell(COUNT)
        while counted["states"].get("stored", 0) < accepted and time.monotonic() < deadline:
            time.sleep(2)
            counted = backend.shell(COUNT)
        drained = time.monotonic() - drain_started
    finally:
        backend.stop()
    rows = [row for part in parts for row in part["results"] if measure_from <= row[1] < end_at]
    return {
        "rows": rows,
        "errors": [e for part in parts for e in part["errors"]],
        "error_count": sum(1 for part in parts for row in part["results"] if not row[3]),
        "accepted": accepted,
        "states": counted["states"],
        "distinct": counted["distinct"],
        "drain_s": drained,
    }


def report(
    results: dict[str, dict[str, Any]], backends: dict[str, Backend], args: argparse.Namespace
) -> bool:
    ok = True
    print(
        f"\nMixed load, {args.duration:.0f} s measured after {args.warmup:.0f} s warm-up; gunicorn 2 sync "
        f"workers + Celery prefork ×2; {args.processes}×{args.threads} closed-loop clients; "
        f"{os.cpu_count()} cores, everything on this machine"
    )
    for name, result in results.items():
        print(f"\n{name}: {backends[name].describe}")
        print(
            f"  {'':<11}{'requests':>10}{'per s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'errors':>8}"
        )
        for kind in [*WEIGHTS, "all"]:
            rows = [r for r in result["rows"] if kind in ("all", r[0])]
            seconds = [r[2] * 1000 for r in rows]
            errors = sum(1 for r in rows if not r[3])
            print(
                f"  {kind:<11}{len(rows):>10,}{len(rows) / args.duration:>10,.0f}{percentile(seconds, 50):>10.1f}"
                f"{percentile(seconds, 95):>10.1f}{percentile(seconds, 99):>10.1f}{errors:>8}"
            )
        stored = result["states"].get("stored", 0)
        every = stored == result["accepted"] == result["distinct"] and set(result["states"]) <= {"stored"}
        print(
            f"  log events: {result['accepted']:,} accepted, {stored:,} stored ({result['distinct']:,} distinct "
            f"request ids), others {({k: v for k, v in result['states'].items() if k != 'stored'}) or 'none'}; "
            f"queue drained {result['drain_s']:.0f} s after the load"
        )
        print(
            f"  zero errors: {'yes' if not result['error_count'] else 'NO'}; every accepted event stored: "
            f"{'yes' if every else 'NO'}"
        )
        for line in result["errors"][:5]:
            print(f"    {line}")
        ok = ok and not result["error_count"] and every
    if len(results) == 2:
        a, b = (len(results[n]["rows"]) for n in ("postgres", "embedded"))
        print(f"\nthroughput, PostgreSQL and Redis / embedded: {a / b:.2f}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--usage-events", type=int, default=200_000)
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--only", choices=["embedded", "postgres"])
    parser.add_argument("--keep-tmp", action="store_true")
    args = parser.parse_args(argv)

    results: dict[str, dict[str, Any]] = {}
    backends: dict[str, Backend] = {}
    tmp = Path(tempfile.mkdtemp(prefix="atalaya-load-"))
    try:
        for name in ("postgres", "embedded"):
            if args.only and name != args.only:
                continue
            workdir = tmp / name
            workdir.mkdir()
            backend = postgres_backend(workdir) if name == "postgres" else embedded_backend(workdir)
            backends[name] = backend
            try:
                results[name] = measure(backend, args)
            finally:
                backend.stop()
    finally:
        if args.keep_tmp:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0 if report(results, backends, args) else 1


if __name__ == "__main__":
    sys.exit(main())
