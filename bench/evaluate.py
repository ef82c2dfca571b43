#!/usr/bin/env python3
"""Evaluation runs: 1,000 golden-set cases against the OpenAI-compatible fake answering in 200 ms, through
the worker's service with the default concurrency, on the embedded default (SQLite).

    .venv/bin/python bench/evaluate.py                  # 1,000 cases, 200 ms a call
    .venv/bin/python bench/evaluate.py --cases 200 --latency 0.5

What one run does:

1. A fresh embedded console in a temporary ATALAYA_VAR_DIR (console.settings.local, DEBUG off): migrate;
   a team, a prompt version, a golden set of `--cases` cases (each with a reference, phrases that must and
   must not appear, and a regular expression), and the in-repo OpenAI-compatible fake
   (tests/evaluation/openai_fake.py, a real HTTP server, in a process of its own so that it does not share
   the console's interpreter) answering every chat completion after `--latency` seconds; the console's
   provider is the real `openai` client aimed at it (EVALUATION_OPENAI_BASE_URL).
2. `evaluation_run_execute` carries out the run as the worker does, with the default settings
   (EVALUATION_CONCURRENCY requests in flight, EVALUATION_RATE_PER_SECOND, retries): render every case,
   call, score, write results in batches, record every answer for replay, aggregate. Timed from the call to
   the completed run. The target: under 10 s for 1,000 cases at 200 ms.
3. The peer: the same service with EVALUATION_CONCURRENCY=1 (one call after the other, what a loop over the
   cases does) on `--peer-cases` cases of a second golden set, its time per case projected to `--cases`.
4. Scoring throughput: `metrics.score_case` alone over the run's answers, (a) the checks only (contains,
   not contains, regex) and (b) with the reference scores too (exact match, ROUGE-L, chrF, BLEU), cases/s.
Printed: the table, the ratio to the peer, and the checks (every case has one result and passed; the fake
never saw more calls at once than the concurrency). Exit status 1 when a check fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TARGET_S = 10.0
TOPICS = ["refund", "invoice", "delivery", "password reset", "opening hours", "premium support", "returns"]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def question(n: int) -> str:
    return f"Question {n}: how does {TOPICS[n % len(TOPICS)]} work for order {1000 + n}?"


def answer(text: str) -> str:
    """What the fake answers: passes the case built for the same question."""
    n = int(text.split(":", 1)[0].split()[-1])
    topic = TOPICS[n % len(TOPICS)]
    return f"Order {1000 + n}: {topic} is handled within 30 days by our team. Anything else?"


def cases(count: int) -> list[dict]:
    return [
        {
            "name": f"case {n}",
            "variables": {"company": "Acme", "question": question(n)},
            "reference": f"Order {1000 + n}: {TOPICS[n % len(TOPICS)]} is handled within 30 days.",
            "must_contain": ["30 days", str(1000 + n)],
            "must_not_contain": ["password:"],
            "regex": r"^Order \d+",
        }
        for n in range(count)
    ]


def seed(args):
    from apps.accounts.models import User
    from apps.accounts.roles import Role
    from apps.accounts.services import membership_grant, team_create
    from apps.catalog.services import prompt_create, prompt_version_create
    from apps.evaluation.golden_sets import golden_set_create

    team = team_create(actor=None, slug="bench", name="Bench")
    engineer = User.objects.create_user("bench-eng", password="bench-password")
    membership_grant(actor=None, user=engineer, team=team, role=Role.ENGINEER)
    prompt = prompt_create(actor=engineer, team=team, name="support-reply", description="", tags=[])
    version = prompt_version_create(
        actor=engineer,
        prompt=prompt,
        messages=[
            {"role": "system", "template": "You are the support assistant of {{ company }}."},
            {"role": "user", "template": "{{ question }}"},
        ],
        model="fake-llm",
        parameters={"temperature": 0.2},
        message="bench",
    )
    main_set = golden_set_create(
        actor=engineer, team=team, name="bench-main", prompt=prompt, cases=cases(args.cases)
    )
    peer_set = golden_set_create(actor=engineer, team=team, name="bench-peer", cases=cases(args.peer_cases))
    return engineer, version, main_set, peer_set


def timed_run(engineer, version, golden_set):
    from apps.evaluation.models import CaseResult
    from apps.evaluation.runs import evaluation_run_execute, evaluation_run_start

    run = evaluation_run_start(
        actor=engineer, prompt_version=version, golden_set=golden_set, provider="openai"
    )
    clock = time.perf_counter()
    run = evaluation_run_execute(run_id=run.pk)
    seconds = time.perf_counter() - clock
    results = list(CaseResult.objects.filter(run=run).select_related("case"))
    return run, results, seconds


def scoring(results, with_reference: bool) -> float:
    from apps.evaluation import metrics

    expectations = []
    for r in results:
        case = r.case
        expectations.append(
            (
                metrics.Expectations(
                    reference=case.reference if with_reference else "",
                    must_contain=tuple(case.must_contain),
                    must_not_contain=tuple(case.must_not_contain),
                    regex=case.regex,
                ).check(),
                r.output,
                r.latency_ms,
                r.tokens_out,
            )
        )
    clock = time.perf_counter()
    for expect, output, latency, tokens in expectations:
        metrics.score_case(expect, output, latency_ms=latency, tokens_out=tokens)
    return len(expectations) / (time.perf_counter() - clock)


def serve_fake(latency: float) -> int:
    """The fake in this process: prints its base URL, serves until standard input closes, then prints the
    most requests it answered at once."""
    from tests.evaluation.openai_fake import FakeOpenAI

    fake = FakeOpenAI(latency_seconds=latency).start()
    fake.responder = lambda body: answer(body["messages"][-1]["content"])
    print(fake.base_url, flush=True)
    for line in sys.stdin:
        if line.strip() == "reset":
            fake.reset()
    print(fake.max_in_flight, flush=True)
    fake.stop()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=0.2, help="The fake's answer time (s).")
    parser.add_argument("--peer-cases", type=int, default=25, help="Cases the sequential peer runs.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder.")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        return serve_fake(args.latency)

    fake = subprocess.Popen(
        [sys.executable, __file__, "--serve-fake", "--latency", str(args.latency)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert fake.stdin is not None and fake.stdout is not None
    base_url = fake.stdout.readline().strip()
    workdir = Path(tempfile.mkdtemp(prefix="atalaya-bench-evaluate-"))
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="console.settings.local",
        DJANGO_DEBUG="false",
        ATALAYA_VAR_DIR=str(workdir),
        LOG_LEVEL="ERROR",
        EVALUATION_OPENAI_BASE_URL=base_url,
        EVALUATION_OPENAI_API_KEY="test-key",
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
        from django.conf import settings

        from apps.evaluation.providers import get_provider

        log(f"Seeding {args.cases:,} cases …")
        engineer, version, main_set, peer_set = seed(args)
        concurrency, rate = settings.EVALUATION_CONCURRENCY, settings.EVALUATION_RATE_PER_SECOND

        log(
            f"Run: {args.cases:,} cases, the fake answering in {args.latency * 1000:.0f} ms, concurrency {concurrency} …"
        )
        run, results, wall = timed_run(engineer, version, main_set)
        fake.stdin.close()
        in_flight = int(fake.stdout.readline() or 0)
        fake.wait(timeout=10)

        log(f"Peer: {args.peer_cases} cases one after the other …")
        fake = subprocess.Popen(
            [sys.executable, __file__, "--serve-fake", "--latency", str(args.latency)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        settings.EVALUATION_OPENAI_BASE_URL = fake.stdout.readline().strip()
        settings.EVALUATION_CONCURRENCY = 1
        get_provider.cache_clear()
        _, peer_results, peer_wall = timed_run(engineer, version, peer_set)
        settings.EVALUATION_CONCURRENCY = concurrency
        peer_projected = peer_wall / max(1, len(peer_results)) * args.cases

        log("Scoring throughput …")
        checks_rate = scoring(results, with_reference=False)
        full_rate = scoring(results, with_reference=True)

        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nbench/evaluate.py — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, SQLite, {os.cpu_count()} CPUs "
            f"(load average {load})"
        )
        print(
            f"{args.cases:,} cases, OpenAI-compatible fake answering in {args.latency * 1000:.0f} ms, "
            f"EVALUATION_CONCURRENCY={concurrency}, EVALUATION_RATE_PER_SECOND={rate:g}\n"
        )
        rows = [
            (
                "evaluation_run_execute, default concurrency",
                f"{wall:.2f} s",
                f"{args.cases / wall:,.0f} cases/s",
            ),
            (
                f"peer: one call after the other ({len(peer_results)} cases, projected)",
                f"{peer_projected:.1f} s",
                f"{len(peer_results) / peer_wall:,.1f} cases/s",
            ),
            ("scoring: checks (contains, not contains, regex)", "", f"{checks_rate:,.0f} cases/s"),
            ("scoring: checks + exact, ROUGE-L, chrF, BLEU", "", f"{full_rate:,.0f} cases/s"),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'':{width}}  {'wall time':>10}  {'throughput':>16}")
        for label, seconds, rate_text in rows:
            print(f"{label:{width}}  {seconds:>10}  {rate_text:>16}")
        print(
            f"\nratio (peer / console): {peer_projected / wall:.1f}x; target under {TARGET_S:.0f} s: "
            f"{'met' if wall < TARGET_S else 'NOT met'}; most calls in flight at once: {in_flight}"
        )
        problems = []
        if run.status != "completed":
            problems.append(f"the run ended {run.status}: {run.error}")
        if len(results) != args.cases or len({r.case_id for r in results}) != args.cases:
            problems.append(f"{len(results)} results for {args.cases} cases")
        if sum(r.passed for r in results) != args.cases:
            problems.append(f"{args.cases - sum(r.passed for r in results)} cases did not pass")
        if in_flight > concurrency:
            problems.append(f"{in_flight} calls in flight, over the concurrency of {concurrency}")
        print("checks: " + ("all passed" if not problems else "; ".join(problems)))
        return 1 if problems else 0
    finally:
        if fake.poll() is None:
            fake.kill()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
