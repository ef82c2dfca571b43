#!/usr/bin/env python3
"""Sustained log ingestion end to end, on the embedded default, beside the scanner benchmark.

    .venv/bin/python bench/ingest.py                      # 60,000 events, then the scanner table
    .venv/bin/python bench/ingest.py --events 20000 --no-scanner-bench

What one run does:

1. A fresh embedded console in a temporary folder (SQLite, filesystem broker, local PII scanner): migrate,
   one team, one engineer, a `logs:write` token.
2. Events of about 1 KB each from the labelled PII corpus (bench/pii_corpus.py): a system and a user
   message, an answer, metadata, so every event really carries identifiers to redact.
3. gunicorn (the web, 2 sync workers) and a real Celery worker (prefork, 2 processes) start; --clients
   threads POST the batches (500 events each) to /api/v1/logs/batch over keep-alive connections.
4. The clock runs from the first POST until every accepted event is stored redacted (polled in the
   database). Events/s = events / that time: HTTP → staged (encrypted) → scanned → stored.
5. Zero loss: every event accepted, every accepted event stored exactly once (one row per request id,
   none left staged or quarantined, no staged text left), and a sample checked for redaction.
6. Then bench/scanner.py: the local scanner beside Presidio on the same corpus (its own table).

The target (issue 4): at least 2,000 events/s of about 1 KB each with zero loss, on 2 cores.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_events(count: int, seed: int) -> list[dict]:
    from bench.pii_corpus import generate

    samples = generate(min(count, 4000), seed)
    events = []
    for i in range(count):
        a, b = samples[i % len(samples)], samples[(i * 7 + 3) % len(samples)]
        events.append(
            {
                "request_id": f"bench-{i:08d}",
                "started_at": "2026-11-21T10:00:00Z",
                "ended_at": "2026-11-21T10:00:01.2Z",
                "app": "support-bot",
                "prompt": "support-reply",
                "prompt_version": 3,
                "model": "gemini-2.5-flash",
                "input": [
                    {"role": "system", "content": "You are the support assistant."},
                    {"role": "user", "content": a.text[:560]},
                ],
                "output": b.text[:380],
                "tokens_in": 812,
                "tokens_out": 95,
                "latency_ms": 1180,
                "status": "ok",
                "end_user": f"user-{i % 997}",
                "metadata": {"channel": "web"},
            }
        )
    return events


class Console:
    """The embedded default in a temporary folder, driven like `make run` does, with gunicorn."""

    def __init__(self, workdir: Path, web_workers: int, scan_workers: int):
        self.workdir = workdir
        self.port = free_port()
        self.env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="console.settings.local",
            DJANGO_DEBUG="false",
            ATALAYA_VAR_DIR=str(workdir),
            PII_SCANNER="local",
            LOG_LEVEL="WARNING",
            # Far above the load, so nothing is refused, but still checked on every request (its cost is measured).
            ATALAYA_API_RATE_LIMIT="1000000000/min",
            ATALAYA_API_WRITE_RATE_LIMIT="1000000000/min",
        )
        self.web_workers = web_workers
        self.scan_workers = scan_workers
        self.procs: list[subprocess.Popen] = []

    def manage(self, *args: str, stdin: str | None = None) -> str:
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout

    def prepare(self) -> str:
        self.manage("migrate", "--no-input", "-v0")
        script = (
            "from apps.accounts.models import User\n"
            "from apps.accounts.services import team_create, membership_grant, token_create\n"
            "t = team_create(actor=None, slug='bench', name='Bench')\n"
            "u = User.objects.create_user('bench', password='bench-password')\n"
            "membership_grant(actor=None, user=u, team=t, role='engineer')\n"
            "print(token_create(actor=u, user=u, team=t, name='bench', scopes=['logs:write'])[1])\n"
        )
        return self.manage("shell", "-c", script).strip().splitlines()[-1]

    def start(self) -> None:
        log = open(self.workdir / "processes.log", "w")  # noqa: SIM115
        self.procs.append(
            subprocess.Popen(
                [
                    str(BIN / "gunicorn"),
                    "console.wsgi",
                    "-b",
                    f"127.0.0.1:{self.port}",
                    "-w",
                    str(self.web_workers),
                    "--worker-class",
                    "sync",
                    "--keep-alive",
                    "30",
                    "--log-level",
                    "warning",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
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
                    f"--concurrency={self.scan_workers}",
                    "--loglevel=WARNING",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not start:\n{(self.workdir / 'processes.log').read_text()[-2000:]}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def counts(db: Path) -> dict[str, int]:
    import sqlite3

    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        rows = conn.execute("SELECT state, COUNT(*) FROM logs_logevent GROUP BY state").fetchall()
    return dict(rows)


def post_all(port: int, token: str, bodies: list[bytes], clients: int) -> list[dict]:
    answers: list[dict] = []
    lock = threading.Lock()
    queue = list(enumerate(bodies))

    def run() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while True:
            with lock:
                if not queue:
                    break
                _, body = queue.pop(0)
            conn.request(
                "POST",
                "/api/v1/logs/batch",
                body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            response = conn.getresponse()
            data = json.loads(response.read())
            if response.status != 202:
                raise RuntimeError(f"HTTP {response.status}: {data}")
            with lock:
                answers.append(data)
        conn.close()

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--scan-workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--no-scanner-bench", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings.local")
    events = make_events(args.events, args.seed)
    bodies = [
        json.dumps({"events": events[i : i + args.batch]}).encode() for i in range(0, len(events), args.batch)
    ]
    mean_bytes = sum(len(b) for b in bodies) / len(events)

    with tempfile.TemporaryDirectory(prefix="atalaya-ingest-") as tmp:
        console = Console(Path(tmp), args.web_workers, args.scan_workers)
        token = console.prepare()
        console.start()
        try:
            started = time.perf_counter()
            answers = post_all(console.port, token, bodies, args.clients)
            posted = time.perf_counter() - started
            accepted = sum(a["accepted"] for a in answers)
            deadline = time.time() + args.timeout
            state = counts(Path(tmp) / "atalaya.sqlite3")
            while state.get("stored", 0) < accepted and time.time() < deadline:
                time.sleep(0.1)
                state = counts(Path(tmp) / "atalaya.sqlite3")
            elapsed = time.perf_counter() - started
        finally:
            console.stop()
        import sqlite3

        with sqlite3.connect(Path(tmp) / "atalaya.sqlite3") as conn:
            distinct = conn.execute("SELECT COUNT(DISTINCT request_id) FROM logs_logevent").fetchone()[0]
            left_staged = conn.execute(
                "SELECT COUNT(*) FROM logs_logevent WHERE staged_payload IS NOT NULL"
            ).fetchone()[0]
            sample = conn.execute("SELECT input, output FROM logs_logevent WHERE has_pii LIMIT 1").fetchone()

    stored = state.get("stored", 0)
    zero_loss = (
        accepted == len(events) == stored == distinct
        and not left_staged
        and not state.get("staged")
        and not state.get("quarantined")
    )
    rate = stored / elapsed
    print(
        f"\nIngestion end to end (embedded default: SQLite, filesystem broker, local scanner; "
        f"gunicorn {args.web_workers} sync workers, Celery prefork ×{args.scan_workers}, "
        f"{args.clients} clients, batches of {args.batch}, {os.cpu_count()} cores)"
    )
    print(f"{'events sent':<34}{len(events):>12,}   (mean {mean_bytes:,.0f} bytes of JSON each)")
    print(
        f"{'accepted / duplicate / rejected':<34}{accepted:>12,} / {sum(a['duplicate'] for a in answers)}"
        f" / {sum(a['rejected'] for a in answers)}"
    )
    print(f"{'HTTP ingestion (staged)':<34}{len(events) / posted:>12,.0f} events/s   ({posted:.1f} s)")
    print(f"{'end to end (stored redacted)':<34}{rate:>12,.0f} events/s   ({elapsed:.1f} s)")
    print(f"{'stored, distinct request ids':<34}{stored:>12,} / {distinct:,}")
    print(f"{'left staged / quarantined':<34}{state.get('staged', 0):>12,} / {state.get('quarantined', 0)}")
    print(f"{'zero loss':<34}{'yes' if zero_loss else 'NO':>12}")
    print(f"{'target ≥ 2,000 events/s':<34}{'met' if rate >= 2000 and zero_loss else 'MISSED':>12}")
    if sample:
        print(f"\nA stored event (redacted): {sample[0][:160]}…")
    ok = zero_loss and rate >= 2000
    if not args.no_scanner_bench:
        print()
        from bench import scanner

        ok = scanner.main(["--samples", "5000", "--seed", str(args.seed)]) == 0 and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
