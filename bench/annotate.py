#!/usr/bin/env python3
"""Annotation assignment: next item + submit with one million items in queues and 50 concurrent annotators,
on the embedded default (SQLite).

    .venv/bin/python bench/annotate.py                      # 1,000,000 items, 50 annotators
    .venv/bin/python bench/annotate.py --items 100000 --seconds 20

What one run does:

1. A fresh embedded console in a temporary ATALAYA_VAR_DIR (SQLite, WAL, BEGIN IMMEDIATE;
   console.settings.local, DEBUG off): migrate; a team, a rubric, `--annotators` annotators and
   `--queues` queues of `--items` items in all (k = `--overlap` slots each), built with bulk inserts
   (apps/common/bulk.py) over stored, redacted log events (one event per item of a queue; the queues share
   the events, as queues over the same logs do).
2. Each annotator is a thread with its own database connection and a signed-in session, calling the API
   in process with Django's test client (the server's time, without the network):
   POST /api/v1/feedback/queues/{id}/next, then POST /api/v1/feedback/slots/{slot}/submit with a rating.
   - "annotators": each one reads the item for a random --think time (uniform, mean 5 s: faster than a
     person who reads an answer and rates it on a rubric, typically 15 to 60 s) between next and submit,
     and starts within one reading time of the others (not all 50 in the same millisecond).
   - "saturation": no reading time at all, every thread back-to-back, for --seconds: the capacity.
3. Printed: p50/p95/p99 of next, of submit and of the two together (the target: p95 of next + submit
   under 50 ms in the annotators run), throughput in ratings per second, and the checks: no slot handed out
   twice, nobody rated an item twice, no item above k ratings. Exit status 1 when one fails.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_P95_MS = 50


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def seed(args) -> tuple[list[int], list[str]]:
    """The team, the annotators, the events and the queues; returns the queue ids and the usernames."""
    from django.db import connection, transaction
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.accounts.roles import Role
    from apps.accounts.services import membership_grant, team_create
    from apps.common.bulk import bulk_insert_values
    from apps.feedback.models import AnnotationQueue, AnnotationSlot, QueueItem
    from apps.feedback.services import rating_schema_create
    from apps.logs.models import EventState, LogEvent

    team = team_create(actor=None, slug="bench", name="Bench")
    engineer = User.objects.create_user("bench-eng", password="bench-password")
    membership_grant(actor=None, user=engineer, team=team, role=Role.ENGINEER)
    names = [f"ann{n:02d}" for n in range(args.annotators)]
    for name in names:
        user = User.objects.create_user(name, password="bench-password")
        membership_grant(actor=None, user=user, team=team, role=Role.ANNOTATOR)
    schema = rating_schema_create(
        actor=engineer,
        team=team,
        name="rubric",
        criteria=[
            {"name": "ok", "kind": "thumbs"},
            {"name": "helpfulness", "kind": "scale", "min": 1, "max": 5},
            {"name": "corrected", "kind": "text"},
        ],
    )
    per_queue = args.items // args.queues
    now = timezone.now()
    started = now - timedelta(days=1)
    fields = (
        "team", "request_id", "state", "app", "prompt", "prompt_version", "model", "started_at", "status",
        "input", "output", "error", "metadata", "end_user", "search_text", "has_pii", "pii_types",
        "redaction_mode", "scanner", "received_at", "stored_at", "attempts", "last_error",
    )  # fmt: skip
    clock = time.perf_counter()
    batch = 20_000
    with transaction.atomic():
        for start in range(0, per_queue, batch):
            rows = [
                (
                    team.pk,
                    f"bench-{i:08d}",
                    EventState.STORED,
                    "bot",
                    "support-reply",
                    1 + i % 2,
                    "gemini-2.5-flash",
                    started + timedelta(milliseconds=i),
                    "ok",
                    [{"role": "user", "content": f"Question {i}: where is my order? I am [EMAIL_ADDRESS]"}],
                    f"Answer {i}: it ships today.",
                    "",
                    {},
                    "",
                    "",
                    True,
                    ["EMAIL_ADDRESS"],
                    "replace",
                    "local",
                    now,
                    now,
                    1,
                    "",
                )
                for i in range(start, min(per_queue, start + batch))
            ]
            bulk_insert_values(LogEvent, fields, rows)
    event_ids = list(LogEvent.objects.filter(team=team).order_by("id").values_list("id", flat=True))
    log(f"  {len(event_ids):,} stored events in {time.perf_counter() - clock:.1f} s")
    queue_ids = []
    users = list(User.objects.filter(username__in=names))
    for q in range(args.queues):
        clock = time.perf_counter()
        with transaction.atomic():
            queue = AnnotationQueue.objects.create(
                team=team,
                name=f"queue-{q}",
                schema=schema,
                size=per_queue,
                overlap=args.overlap,
                item_count=per_queue,
                created_by=engineer,
            )
            queue.assignees.set(users)
            for start in range(0, per_queue, batch):
                bulk_insert_values(
                    QueueItem,
                    ("queue", "position", "event"),
                    [(queue.pk, i, event_ids[i]) for i in range(start, min(per_queue, start + batch))],
                )
            items = QueueItem.objects.filter(queue=queue).order_by("position").values_list("id", "position")
            rows = []
            for item_id, position in items.iterator(chunk_size=50_000):
                rows.extend((queue.pk, item_id, n, position, "open") for n in range(args.overlap))
                if len(rows) >= batch:
                    bulk_insert_values(AnnotationSlot, ("queue", "item", "number", "position", "state"), rows)
                    rows = []
            bulk_insert_values(AnnotationSlot, ("queue", "item", "number", "position", "state"), rows)
        queue_ids.append(queue.pk)
        log(f"  queue {q}: {per_queue:,} items × {args.overlap} slots in {time.perf_counter() - clock:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return queue_ids, names


def run(label: str, args, queue_ids: list[int], names: list[str], think: float, api: bool = True) -> dict:
    from django.db import connection
    from django.test import Client

    from apps.accounts.models import User
    from apps.feedback.models import AnnotationQueue
    from apps.feedback.services import annotation_next, annotation_submit

    nexts: list[float] = []
    submits: list[float] = []
    both: list[float] = []
    leased: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(len(names))
    deadline_box: list[float] = []

    def annotator(name: str, seed_: int) -> None:
        rng = random.Random(seed_)
        try:
            client = Client(HTTP_HOST="127.0.0.1")
            user = User.objects.get(username=name)
            client.force_login(user)
            queues = {q.pk: q for q in AnnotationQueue.objects.select_related("schema", "team")}
            for _ in range(2):  # warm-up: connection, URL resolver, serializers, translations
                slot = client.post(f"/api/v1/feedback/queues/{queue_ids[0]}/next").json()["slot"]
                client.post(
                    f"/api/v1/feedback/slots/{slot}/submit",
                    data=json.dumps({"values": {"ok": True, "helpfulness": 3}}),
                    content_type="application/json",
                )
            barrier.wait(timeout=120)
            if not deadline_box:
                deadline_box.append(time.perf_counter() + args.seconds)
            if think:  # people do not all click at the same instant: each starts within one reading time
                time.sleep(rng.uniform(0, 2 * think))
            while time.perf_counter() < deadline_box[0]:
                queue_id = rng.choice(queue_ids)
                body = {"values": {"ok": rng.random() < 0.8, "helpfulness": rng.randint(1, 5)}}
                start = time.perf_counter()
                if api:
                    response = client.post(f"/api/v1/feedback/queues/{queue_id}/next")
                    if response.status_code != 200:
                        errors.append(f"next {response.status_code} {response.content[:200]!r}")
                        break
                    slot = response.json()["slot"]
                else:  # the services alone: the data layer without Django's request handling
                    slot = annotation_next(actor=user, queue=queues[queue_id]).pk
                got = time.perf_counter()
                if think:
                    time.sleep(rng.uniform(0, 2 * think))
                sub_start = time.perf_counter()
                if api:
                    response = client.post(
                        f"/api/v1/feedback/slots/{slot}/submit",
                        data=json.dumps(body),
                        content_type="application/json",
                    )
                    if response.status_code != 201:
                        errors.append(f"submit {response.status_code} {response.content[:200]!r}")
                        break
                else:
                    annotation_submit(actor=user, slot_id=slot, values=body["values"])
                done = time.perf_counter()
                with lock:
                    nexts.append((got - start) * 1000)
                    submits.append((done - sub_start) * 1000)
                    both.append((got - start + done - sub_start) * 1000)
                    leased.append(slot)
        except Exception as exc:  # reported below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=annotator, args=(name, n)) for n, name in enumerate(names)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    return {
        "label": label,
        "ratings": len(both),
        "throughput": len(both) / args.seconds,
        "next": nexts,
        "submit": submits,
        "both": both,
        "leased": leased,
        "errors": errors,
        "elapsed": elapsed,
    }


def report(result: dict) -> None:
    print(f"\n{result['label']}: {result['ratings']:,} ratings, {result['throughput']:.0f} ratings/s")
    print(f"  {'':22} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for key, name in (("next", "next item"), ("submit", "submit"), ("both", "next + submit")):
        samples = result[key]
        print(
            f"  {name:22} {statistics.median(samples):8.1f} {percentile(samples, 95):8.1f} "
            f"{percentile(samples, 99):8.1f} {max(samples):8.1f}"
        )
    for error in result["errors"][:5]:
        print(f"  error: {error}")


def checks() -> list[str]:
    from django.db.models import Count

    from apps.feedback.models import Annotation, AnnotationQueue

    problems = []
    twice = (
        Annotation.objects.values("item_id", "annotator_id").annotate(n=Count("id")).filter(n__gt=1).count()
    )
    if twice:
        problems.append(f"{twice} items rated twice by the same annotator")
    over = 0
    for queue in AnnotationQueue.objects.all():
        over += (
            Annotation.objects.filter(queue=queue)
            .values("item_id")
            .annotate(n=Count("id"))
            .filter(n__gt=queue.overlap)
            .count()
        )
    if over:
        problems.append(f"{over} items above k ratings")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1_000_000, help="Items in all the queues together.")
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--overlap", type=int, default=2, help="k: annotators per item.")
    parser.add_argument("--annotators", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60, help="Length of each run.")
    parser.add_argument("--think", type=float, default=5.0, help="Mean reading time per item (s).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="atalaya-bench-annotate-"))
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="console.settings.local",
        DJANGO_DEBUG="false",
        ATALAYA_VAR_DIR=str(workdir),
        LOG_LEVEL="ERROR",
    )
    os.environ.update(env)
    try:
        log(f"Folder: {workdir}")
        proc = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            raise SystemExit(proc.stdout + proc.stderr)
        import django

        django.setup()
        from django.db import connection

        log(
            f"Seeding {args.items:,} items in {args.queues} queues, k={args.overlap}, {args.annotators} annotators …"
        )
        clock = time.perf_counter()
        queue_ids, names = seed(args)
        seed_s = time.perf_counter() - clock
        connection.close()
        size_mb = sum(f.stat().st_size for f in workdir.glob("atalaya.sqlite3*")) / 1e6

        log(f"Annotators run: {args.seconds:.0f} s, reading time uniform with mean {args.think} s …")
        people = run(
            f"{args.annotators} annotators (reading mean {args.think} s)", args, queue_ids, names, args.think
        )
        log("The same through the services alone (no HTTP handling) …")
        services = run(
            f"{args.annotators} annotators (reading mean {args.think} s), services only",
            args,
            queue_ids,
            names,
            args.think,
            api=False,
        )
        log(f"Saturation run: {args.seconds:.0f} s, no reading time …")
        saturated = run(f"{args.annotators} annotators back to back (saturation)", args, queue_ids, names, 0)

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nbench/annotate.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, SQLite, {os.cpu_count()} CPUs "
            f"(load average {load})"
        )
        print(
            f"{args.items:,} items in {args.queues} queues (k={args.overlap}: {args.items * args.overlap:,} slots), "
            f"{args.annotators} annotators; seeded in {seed_s:.0f} s; database {size_mb:,.0f} MB"
        )
        report(people)
        report(services)
        report(saturated)
        leased = people["leased"] + services["leased"] + saturated["leased"]
        problems = checks()
        if len(leased) != len(set(leased)):
            problems.append("a slot was handed out twice")
        problems += [
            f"{r['label']}: {len(r['errors'])} errors" for r in (people, services, saturated) if r["errors"]
        ]
        p95 = percentile(people["both"], 95)
        verdict = "met" if p95 < TARGET_P95_MS else "MISSED"
        print(
            f"\nTarget: p95 of next + submit under {TARGET_P95_MS} ms with {args.annotators} annotators: {verdict} ({p95:.1f} ms)"
        )
        print(
            "Checks: "
            + (
                "no slot twice, nobody rated an item twice, k respected"
                if not problems
                else "; ".join(problems)
            )
        )
        return 0 if not problems and p95 < TARGET_P95_MS else 1
    finally:
        if args.keep:
            log(f"Kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
