#!/usr/bin/env python3
"""The SDK (sdk/python, `atalaya-sdk`) against a live console on the embedded default.

    .venv/bin/python bench/sdk.py
    .venv/bin/python bench/sdk.py --events 50000 --gets 200000

What one run measures:

1. A cached `client.prompts.get("greeting")` in process (the hot path: a dict lookup and a monotonic
   clock compare), each call timed on its own: p50, p99 (target: p99 under 5 µs).
2. The caller's cost of `client.log(...)`: each call timed on its own, in rounds of 400 calls with the
   queue shipped between rounds (the call itself), then back to back while the shipper thread runs
   (total time / calls, the GIL shared with the shipping). Target: under 20 µs.
3. Background shipping to a console on the embedded default (gunicorn with 2 sync workers, a Celery
   worker scanning the events, SQLite, the filesystem broker, the local PII scanner, on this machine):
   --events logged as fast as possible, then `flush()`; events/s = events / (first log → everything
   accepted by the console, 202). Then the check that every event is in the console exactly once.
   Target: at least 5,000 events/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import Console  # noqa: E402

SETUP = """
from apps.accounts.models import User
from apps.accounts.services import team_create, membership_grant, token_create
from apps.catalog.services import prompt_create, prompt_version_create, prompt_version_submit, prompt_label_set
from apps.workflows.services import approval_decision_record
team = team_create(actor=None, slug='bench', name='Bench')
author = User.objects.create_user('bench', password='bench-password')
reviewer = User.objects.create_user('reviewer', password='reviewer-password')
membership_grant(actor=None, user=author, team=team, role='engineer')
membership_grant(actor=None, user=reviewer, team=team, role='governance')
prompt = prompt_create(actor=author, team=team, name='greeting')
version = prompt_version_create(actor=author, prompt=prompt, model='gemini-2.5-flash', parameters={'temperature': 0.2},
    messages=[{'role': 'system', 'template': 'You help customers of {{ company }}.'},
              {'role': 'user', 'template': '{{ question }}'}], message='first')
request = prompt_version_submit(actor=author, version=version)
approval_decision_record(request_id=request.pk, reviewer=reviewer, decision='approve', comment='ok')
prompt_label_set(actor=reviewer, prompt=prompt, label='production', version_number=version.number)
print(token_create(actor=author, user=author, team=team, name='bench', scopes=['prompts:read', 'logs:write'])[1])
"""

QUESTION = "Where is my order 4821? I paid on Monday and the tracking page still says it is being prepared."
ANSWER = "Your order 4821 left our warehouse this morning; it should arrive within two working days."


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # after the name: state, ppid, pgrp, ..., utime (11), stime (12)
            total += int(fields[11]) + int(fields[12])
    return total / tick


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events",
        type=int,
        default=50_000,
        help="at most 100,000: the SDK's queue drops what is past its bound",
    )
    parser.add_argument("--gets", type=int, default=200_000)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--scan-workers", type=int, default=1)
    args = parser.parse_args(argv)

    from atalaya_sdk import Client

    with tempfile.TemporaryDirectory(prefix="atalaya-sdk-bench-") as tmp:
        console = Console(Path(tmp), args.web_workers, args.scan_workers)
        console.manage("migrate", "--no-input", "-v0")
        token = console.manage("shell", "-c", SETUP).strip().splitlines()[-1]
        console.start()
        try:
            url = f"http://127.0.0.1:{console.port}"
            client = Client(url, token, app="support-bot", ttl=3600)
            prompt = client.prompts.get("greeting")
            messages = prompt.render(company="Acme", question=QUESTION)

            # 1. Cached get.
            get = client.prompts.get
            clock = time.perf_counter_ns
            for _ in range(10_000):
                get("greeting")
            gets = []
            for _ in range(args.gets):
                t0 = clock()
                get("greeting")
                gets.append(clock() - t0)
            overhead = []
            for _ in range(args.gets // 10):
                t0 = clock()
                overhead.append(clock() - t0)
            get_p50, get_p99 = percentile(gets, 0.5) / 1000, percentile(gets, 0.99) / 1000
            clock_cost = statistics.median(overhead) / 1000

            # 2. log(): the call itself, in rounds shipped between them.
            log = client.log
            calls = []
            for _round in range(100):
                for _ in range(400):
                    t0 = clock()
                    log(
                        model=prompt.model,
                        input=messages,
                        output=ANSWER,
                        prompt=prompt,
                        tokens_in=60,
                        tokens_out=20,
                    )
                    calls.append(clock() - t0)
                client.flush()
            log_p50, log_p99 = percentile(calls, 0.5) / 1000, percentile(calls, 0.99) / 1000
            log_mean = statistics.fmean(calls) / 1000
            before = client.log_stats["accepted"]

            # 3. Back to back while shipping, then until the console accepted every event.
            web, worker = (proc.pid for proc in console.procs)
            cpu_before = group_cpu_seconds(web), group_cpu_seconds(worker), time.process_time()
            started = time.perf_counter()
            for _ in range(args.events):
                log(
                    model=prompt.model,
                    input=messages,
                    output=ANSWER,
                    prompt=prompt,
                    tokens_in=60,
                    tokens_out=20,
                )
            logged = time.perf_counter() - started
            delivered = client.flush(timeout=600)
            shipped = time.perf_counter() - started
            cpu_after = group_cpu_seconds(web), group_cpu_seconds(worker), time.process_time()
            cpu_web, cpu_worker, cpu_sdk = (a - b for a, b in zip(cpu_after, cpu_before, strict=True))
            stats = client.log_stats
            client.close()
        finally:
            console.stop()
        import sqlite3

        with sqlite3.connect(Path(tmp) / "atalaya.sqlite3") as conn:
            rows, distinct = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT request_id) FROM logs_logevent"
            ).fetchone()

    sent = 40_000 + args.events
    shipped_events = stats["accepted"] - before  # fewer than --events if the queue's bound dropped some
    rate = shipped_events / shipped
    exactly_once = (
        delivered and rows == distinct == sent and stats["accepted"] == sent and not stats["dropped"]
    )
    sample = {
        "request_id": "0123456789abcdef-1f4a0",
        "started_at": "2026-11-21T10:00:00.000000+00:00",
        "model": prompt.model,
        "input": messages,
        "output": ANSWER,
        "prompt": "greeting",
        "prompt_version": 1,
        "app": "support-bot",
        "tokens_in": 60,
        "tokens_out": 20,
    }
    event_bytes = len(json.dumps(sample))
    print(
        f"\natalaya-sdk against a live console (embedded default: gunicorn {args.web_workers} sync workers, "
        f"Celery ×{args.scan_workers}, SQLite, filesystem broker; {os.cpu_count()} cores)"
    )
    print(
        f"{'cached get p50 / p99':<40}{get_p50:>8.2f} / {get_p99:.2f} µs   ({args.gets:,} calls; clock {clock_cost:.2f} µs)"
    )
    print(
        f"{'log() p50 / p99 / mean (the call)':<40}{log_p50:>8.2f} / {log_p99:.2f} / {log_mean:.2f} µs   (40,000 calls)"
    )
    print(
        f"{'log() back to back while shipping':<40}{logged / args.events * 1e6:>8.2f} µs per call   ({args.events:,} calls)"
    )
    print(
        f"{'shipping to the console':<40}{rate:>8,.0f} events/s   ({shipped_events:,} events of ~{event_bytes} bytes in {shipped:.1f} s)"
    )
    per_event = 1e6 / max(shipped_events, 1)
    print(
        f"{'CPU per event: console web / worker':<40}{cpu_web * per_event:>8.0f} / {cpu_worker * per_event:.0f} µs"
        f"   (the web alone could take {shipped_events / max(cpu_web, 1e-9):,.0f} events/s per core)"
    )
    print(f"{'CPU per event: this process':<40}{cpu_sdk * per_event:>8.0f} µs   (log() calls and shipping)")
    print(
        f"{'load average (1 min) at the end':<40}{os.getloadavg()[0]:>8.1f}   (other work shares the cores)"
    )
    print(
        f"{'accepted / duplicate / dropped':<40}{stats['accepted'] - before:>8,} / {stats['duplicate']} / {stats['dropped']}"
    )
    print(
        f"{'in the console exactly once':<40}{'yes' if exactly_once else 'NO':>8}   ({rows:,} rows, {distinct:,} request ids)"
    )
    targets = [
        ("cached get p99 < 5 µs", get_p99 < 5),
        ("log() < 20 µs", log_p99 < 20),
        ("shipping ≥ 5,000 events/s", rate >= 5000),
    ]
    for name, met in targets:
        print(f"{'target ' + name:<40}{'met' if met else 'MISSED':>8}")
    return 0 if exactly_once and all(met for _, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
