#!/usr/bin/env python3
"""Costs dashboards and summary API over 10 million events: rollups beside the raw events table.

    .venv/bin/python bench/dashboards.py                        # 10,000,000 events in a temporary folder
    .venv/bin/python bench/dashboards.py --events 300000 --keep  # smaller; keep the folder for --reuse
    .venv/bin/python bench/dashboards.py --reuse /tmp/atalaya-bench-dash-xxxx

What one run does:

1. A fresh embedded console in a temporary ATALAYA_VAR_DIR (SQLite; console.settings.local with
   DJANGO_DEBUG=false and the time zone UTC): migrate, collectstatic (the dashboard's pages need the
   manifest when DEBUG is off), then `manage.py seed_usage --events N --team bench --days 30` in a child
   process (its timing is printed). With --reuse the folder is kept and seeded only if it has no
   synthetic events for the team yet.
2. A product owner of the team, a `costs:read` token and a signed-in session.
3. In this process, with Django's test client and time.perf_counter (the server's time without the
   network): --requests requests each, interleaved, after a warm-up:
   - GET /api/v1/costs/summary?team=bench&from=…&to=… (30 days, hour-aligned, so the rollups cover the
     range exactly) and the same with group_by=day;
   - GET /costs/?team=bench&range=30d, the team dashboard (KPIs, every chart, the KPI summary, budgets).
4. The same answers computed directly over the raw events table (SQL aggregates over logs_logevent
   for the same team and range, grouped by the exact latency so percentiles come from the raw
   latencies), timed the same way, --raw-requests times each (a pass reads every event: seconds each).
   For the dashboard: its totals and its breakdowns per day, model and prompt (three passes).
5. Agreement: spend exactly (the raw sum is taken in integer units of 1e-8, the cost column's scale),
   requests, errors, tokens and unpriced requests exactly, and each p50/p95/p99 equal to the upper
   bound of the 5 % histogram bucket of the exact raw percentile; for the summary and for every day
   of group_by=day, and for the dashboard's totals, days, models and prompts (the selector the view uses,
   apps.costs.selectors.costs_breakdown, with the view's filters).
6. gunicorn (one sync worker, loopback): the same three requests --requests times each over HTTP, the
   client's time and the server's own (gunicorn's access log, %(L)s), and the worker's peak memory
   (VmHWM, the kernel's high-water mark of its resident set).

Targets (issue 5): dashboard p95 < 300 ms, summary p95 < 100 ms (in-process server time), raw/rollup
at least 50× (p50 against p50), the web process's peak memory < 500 MB. Exit status 1 when a target is
missed or an answer disagrees.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
BIN = Path(sys.executable).parent
TEAM = "bench"
DASHBOARD_TARGET_MS = 300
SUMMARY_TARGET_MS = 100
RATIO_TARGET = 50
MEMORY_TARGET_MB = 500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def manage(env: dict[str, str], *args: str, echo: bool = False) -> str:
    proc = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if proc.returncode:
        raise SystemExit(f"manage.py {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    if echo:
        for line in proc.stdout.strip().splitlines():
            log(f"  {line}")
    return proc.stdout


def percentile_ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)  # ms

    @property
    def p50(self) -> float:
        return statistics.median(self.samples)

    @property
    def p95(self) -> float:
        return percentile_ms(self.samples, 95)


# The raw answer: SQL over the events table


@dataclass
class Raw:
    requests: int = 0
    errors: int = 0
    pii: int = 0
    unpriced: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_units: int = 0  # 1e-8
    latencies: dict[int, int] = field(default_factory=dict)  # exact latency in ms: count

    @property
    def spend(self) -> Decimal:
        return Decimal(self.cost_units).scaleb(-8)

    def percentile(self, q: float) -> int | None:
        count = sum(self.latencies.values())
        if not count:
            return None
        rank, seen = max(1, math.ceil(q / 100 * count)), 0
        for ms in sorted(self.latencies):
            seen += self.latencies[ms]
            if seen >= rank:
                return ms
        return None


def raw_groups(team_id: int, since: datetime, until: datetime, group: str = "") -> dict[Any, Raw]:
    """One pass over the team's stored events in [since, until), per `group` (an SQL expression) and per
    exact latency: everything the summary shows, percentiles included, without any rollup."""
    from django.db import connection

    key = f"{group}, " if group else ""
    sql = (
        f"SELECT {key or '0, '}latency_ms, COUNT(*), SUM(status <> 'ok'), SUM(has_pii), SUM(cost IS NULL), "
        "SUM(tokens_in), SUM(tokens_out), SUM(CAST(ROUND(cost * 100000000) AS INTEGER)) "
        "FROM logs_logevent WHERE team_id = %s AND state = 'stored' AND started_at >= %s AND started_at < %s "
        f"GROUP BY {key}latency_ms"
    )
    adapt = connection.ops.adapt_datetimefield_value
    groups: dict[Any, Raw] = defaultdict(Raw)
    with connection.cursor() as cursor:
        cursor.execute(sql, [team_id, adapt(since), adapt(until)])
        for g, ms, n, errors, pii, unpriced, t_in, t_out, units in cursor.fetchall():
            raw = groups[g]
            raw.requests += n
            raw.errors += errors or 0
            raw.pii += pii or 0
            raw.unpriced += unpriced or 0
            raw.tokens_in += t_in or 0
            raw.tokens_out += t_out or 0
            raw.cost_units += units or 0
            if ms is not None:
                raw.latencies[ms] = raw.latencies.get(ms, 0) + n
    return groups


def merged(groups: dict[Any, Raw]) -> Raw:
    total = Raw()
    for raw in groups.values():
        total.requests += raw.requests
        total.errors += raw.errors
        total.pii += raw.pii
        total.unpriced += raw.unpriced
        total.tokens_in += raw.tokens_in
        total.tokens_out += raw.tokens_out
        total.cost_units += raw.cost_units
        for ms, n in raw.latencies.items():
            total.latencies[ms] = total.latencies.get(ms, 0) + n
    return total


def disagreements(label: str, rollup: dict[str, Any], raw: Raw) -> list[str]:
    """What differs between a rollup answer (API JSON or selector dict) and the raw one."""
    from apps.costs import latency

    out = []
    exact = {
        "spend": (Decimal(str(rollup["spend"])), raw.spend),
        "requests": (rollup["requests"], raw.requests),
        "errors": (rollup["errors"], raw.errors),
        "tokens_in": (rollup["tokens_in"], raw.tokens_in),
        "tokens_out": (rollup["tokens_out"], raw.tokens_out),
        "unpriced_requests": (rollup["unpriced_requests"], raw.unpriced),
    }
    for name, (got, want) in exact.items():
        if got != want:
            out.append(f"{label}: {name} {got} from the rollups, {want} from the raw events")
    for q in (50, 95, 99):
        exact_ms = raw.percentile(q)
        bucket_ms = None if exact_ms is None else round(latency.upper_bound(latency.bucket_of(exact_ms)), 1)
        got = rollup[f"latency_p{q}_ms"]
        if (None if got is None else float(got)) != bucket_ms:
            out.append(
                f"{label}: p{q} {got} ms from the rollups, raw {exact_ms} ms (its bucket: {bucket_ms})"
            )
    return out


# gunicorn


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    def __init__(self, env: dict[str, str], workdir: Path):
        self.port = free_port()
        self.access_log = workdir / "gunicorn-access.log"
        self.access_log.unlink(missing_ok=True)
        self.output = open(workdir / "gunicorn.log", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(BIN / "gunicorn"),
                "console.wsgi",
                "-b",
                f"127.0.0.1:{self.port}",
                "-w",
                "1",
                "--worker-class",
                "sync",
                "--access-logfile",
                str(self.access_log),
                "--access-logformat",
                "%(r)s %(s)s %(L)s",
            ],
            cwd=ROOT,
            env=env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole by its id
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"gunicorn exited: see {workdir / 'gunicorn.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("gunicorn did not start within 60 s")

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, float]:
        start = time.perf_counter()
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        conn.request("GET", path, headers={"Host": "127.0.0.1", **headers})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response.status, (time.perf_counter() - start) * 1000

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(p) for p in children.read_text().split()] if children.exists() else []

    def peak_mb(self) -> float | None:
        peaks = []
        for pid in self.workers():
            status = Path(f"/proc/{pid}/status").read_text()
            found = re.search(r"VmHWM:\s+(\d+) kB", status)
            if found:
                peaks.append(int(found.group(1)) / 1024)
        return max(peaks) if peaks else None

    def server_ms(self) -> dict[str, list[float]]:
        """Per path, the server's own time of each request (gunicorn's access log)."""
        out: dict[str, list[float]] = defaultdict(list)
        for line in self.access_log.read_text().splitlines():
            found = re.match(r"GET (\S+) HTTP/[\d.]+ (\d+) ([\d.]+)$", line.strip())
            if found:
                out[found.group(1)].append(float(found.group(3)) * 1000)
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.output.close()


# The run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--requests", type=int, default=50, help="Requests per kind on the rollups.")
    parser.add_argument("--raw-requests", type=int, default=5, help="Passes per kind over the raw events.")
    parser.add_argument(
        "--reuse", type=Path, help="An ATALAYA_VAR_DIR to use (and keep) instead of a new one."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the temporary folder (for --reuse).")
    parser.add_argument("--no-http", action="store_true", help="Skip the gunicorn run.")
    args = parser.parse_args()
    began = time.perf_counter()

    workdir = args.reuse or Path(tempfile.mkdtemp(prefix="atalaya-bench-dash-"))
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="console.settings.local",
        DJANGO_DEBUG="false",
        ATALAYA_VAR_DIR=str(workdir),
        ATALAYA_TIME_ZONE="UTC",
        LOG_LEVEL="WARNING",
        ATALAYA_API_RATE_LIMIT="1000000000/min",  # far above the load: checked, never refused
    )
    os.environ.update(env)
    servers: list[Gunicorn] = []  # started by measure(), stopped here whatever happens
    try:
        log(f"Folder: {workdir}")
        manage(env, "migrate", "--no-input", "-v0")
        manage(env, "collectstatic", "--no-input", "-v0")

        import django

        django.setup()
        from django.db import connection

        from apps.accounts.models import Team
        from apps.logs.models import LogEvent

        seed_s = None
        team = Team.objects.filter(slug=TEAM).first()
        if (
            team is None
            or not LogEvent.objects.filter(
                team=team, request_id__gte="synthetic-", request_id__lt="synthetic."
            ).exists()
        ):
            connection.close()
            log(f"Seeding {args.events:,} events over {args.days} days (manage.py seed_usage) …")
            clock = time.perf_counter()
            manage(
                env,
                "seed_usage",
                "--events",
                str(args.events),
                "--team",
                TEAM,
                "--days",
                str(args.days),
                echo=True,
            )
            seed_s = time.perf_counter() - clock
            team = Team.objects.get(slug=TEAM)
        events = LogEvent.objects.filter(team=team).count()
        return measure(args, env, workdir, team, events, seed_s, began, servers)
    finally:
        for server in servers:
            server.stop()
        if not args.reuse and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        elif not args.reuse:
            log(f"Kept {workdir} (reuse it with --reuse {workdir})")


def measure(args, env, workdir, team, events, seed_s, began, servers: list[Gunicorn]) -> int:
    from django.test import Client
    from django.utils import timezone

    from apps.accounts.models import User
    from apps.accounts.roles import Role, Scope
    from apps.accounts.services import membership_grant, token_create
    from apps.costs.selectors import CostFilters, costs_breakdown

    user = User.objects.filter(username="bench-owner").first() or User.objects.create_user(
        "bench-owner", password="bench-password"
    )
    membership_grant(actor=None, user=user, team=team, role=Role.PRODUCT_OWNER)
    token = token_create(actor=user, user=user, team=team, name="bench", scopes=[Scope.COSTS_READ])[1]
    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(user)
    session = client.cookies["sessionid"].value
    bearer = {"Authorization": f"Bearer {token}"}

    now = timezone.now()
    until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    since = until - timedelta(days=30)
    window = {"team": TEAM, "from": since.isoformat(), "to": until.isoformat()}
    summary_path = f"/api/v1/costs/summary?{urlencode(window)}"
    day_path = f"/api/v1/costs/summary?{urlencode({**window, 'group_by': 'day'})}"
    dashboard_path = f"/costs/?{urlencode({'team': TEAM, 'range': '30d'})}"
    today = timezone.localdate()
    dash_filters = CostFilters(
        since=datetime.combine(today - timedelta(days=29), datetime.min.time(), tzinfo=UTC),
        until=datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
        team_ids=(team.pk,),
    )
    kinds = {
        "summary": ("summary API, 30 days", summary_path, bearer),
        "day": ("summary API, group_by=day", day_path, bearer),
        "dashboard": ("team dashboard (/costs/)", dashboard_path, {"Cookie": f"sessionid={session}"}),
    }

    # Rollups, in process.
    log(f"Rollups: {args.requests} requests of each kind, in process …")
    answers: dict[str, Any] = {}

    def call(kind: str) -> float:
        _, path, headers = kinds[kind]
        extra = {"HTTP_AUTHORIZATION": headers["Authorization"]} if "Authorization" in headers else {}
        start = time.perf_counter()
        response = client.get(path, **extra)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            raise SystemExit(f"GET {path}: {response.status_code} {response.content[:500]!r}")
        if kind != "dashboard":
            answers[kind] = response.json()
        return elapsed

    for kind in kinds:  # warm-up: imports, templates, URL resolvers
        for _ in range(3):
            call(kind)
    rollup = {kind: Timing() for kind in kinds}
    for _ in range(args.requests):
        for kind in kinds:
            rollup[kind].samples.append(call(kind))
    inprocess_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # The same answers from the raw events.
    log(f"Raw events: {args.raw_requests} passes of each kind …")
    raw_answers: dict[str, Any] = {}
    day_sql = "substr(started_at, 1, 10)"  # the UTC date (the bench runs in UTC)

    def raw_call(kind: str) -> float:
        start = time.perf_counter()
        if kind == "summary":
            raw_answers[kind] = merged(raw_groups(team.pk, since, until))
        elif kind == "day":
            raw_answers[kind] = raw_groups(team.pk, since, until, day_sql)
        else:
            raw_answers[kind] = {
                g: raw_groups(team.pk, dash_filters.since, dash_filters.until, sql)
                for g, sql in (("day", day_sql), ("model", "model"), ("prompt", "prompt"))
            }
        return (time.perf_counter() - start) * 1000

    raw = {kind: Timing() for kind in kinds}
    for _ in range(args.raw_requests):
        for kind in kinds:
            raw[kind].samples.append(raw_call(kind))

    # Agreement.
    problems: list[str] = []
    problems += disagreements("summary", answers["summary"]["totals"], raw_answers["summary"])
    raw_days = raw_answers["day"]
    api_days = {g["key"]: g for g in answers["day"]["groups"]}
    if set(api_days) != set(raw_days):
        problems.append(f"group_by=day: days {sorted(api_days)} against {sorted(raw_days)}")
    for key in sorted(set(api_days) & set(raw_days)):
        problems += disagreements(f"day {key}", api_days[key], raw_days[key])
    problems += disagreements("group_by=day totals", answers["day"]["totals"], merged(raw_days))
    breakdown = costs_breakdown(user=user, filters=dash_filters, group_bys=("day", "model", "prompt"))
    raw_dash = raw_answers["dashboard"]
    problems += disagreements("dashboard totals", breakdown["totals"], merged(raw_dash["day"]))
    compared = 0
    for group, by_key in raw_dash.items():
        shown = {g["key"]: g for g in breakdown["groups"][group]}
        if set(shown) != set(by_key):
            problems.append(f"dashboard {group}: {sorted(shown)} against {sorted(by_key)}")
        for key in set(shown) & set(by_key):
            problems += disagreements(f"dashboard {group} {key}", shown[key], by_key[key])
            compared += 1

    # HTTP, through gunicorn.
    http_rows: dict[str, tuple[Timing, Timing]] = {}
    worker_mb = None
    if not args.no_http:
        log(f"gunicorn: {args.requests} requests of each kind over HTTP …")
        gunicorn = Gunicorn(env, workdir)
        servers.append(gunicorn)
        client_t = {kind: Timing() for kind in kinds}
        for kind in kinds:
            for _ in range(3):
                gunicorn.get(kinds[kind][1], kinds[kind][2])
        for _ in range(args.requests):
            for kind, (_, path, headers) in kinds.items():
                status, ms = gunicorn.get(path, headers)
                if status != 200:
                    raise SystemExit(f"HTTP GET {path}: {status}")
                client_t[kind].samples.append(ms)
        time.sleep(0.5)
        server = gunicorn.server_ms()
        for kind, (_, path, _) in kinds.items():
            http_rows[kind] = (client_t[kind], Timing(server.get(path, [])[3:]))
        worker_mb = gunicorn.peak_mb()

    # The table.
    summary_totals = answers["summary"]["totals"]
    print()
    print(
        f"bench/dashboards.py: {events:,} events of team {TEAM} over {args.days} days"
        + (
            f"; seeded in {seed_s:.0f} s (manage.py seed_usage, in a child process)"
            if seed_s
            else " (reused)"
        )
    )
    print(
        f"summary window {since:%Y-%m-%d %H:%M} to {until:%Y-%m-%d %H:%M} UTC: "
        f"{summary_totals['requests']:,} requests, spend {summary_totals['spend']}, "
        f"p95 {summary_totals['latency_p95_ms']} ms; dashboard: {today - timedelta(days=29)} to {today}"
    )
    print()
    header = (
        f"{'request':<28} {'rollups in process (ms)':>25}  {'raw events in process (ms)':>27}  "
        f"{'raw/rollup':>10}  {'HTTP client p50/p95 (ms)':>24}  {'gunicorn server p50/p95':>23}"
    )
    print(header)
    print(f"{'':<28} {'n':>5} {'p50':>9} {'p95':>9}  {'n':>5} {'p50':>10} {'p95':>10}  {'p50':>10}")
    print("-" * len(header))
    ratios = {}
    for kind, (label, _, _) in kinds.items():
        r, w = rollup[kind], raw[kind]
        ratios[kind] = w.p50 / r.p50
        line = (
            f"{label:<28} {len(r.samples):>5} {r.p50:>9.1f} {r.p95:>9.1f}  "
            f"{len(w.samples):>5} {w.p50:>10.1f} {w.p95:>10.1f}  {ratios[kind]:>9.0f}×"
        )
        if kind in http_rows:
            c, s = http_rows[kind]
            line += f"  {c.p50:>11.1f} / {c.p95:>9.1f}"
            line += f"  {s.p50:>10.1f} / {s.p95:>8.1f}" if s.samples else "  (no access log)"
        print(line)
    print()
    checked = (
        f"summary, {len(api_days)} days of group_by=day, dashboard totals and {compared} of its "
        "groups (day, model, prompt)"
    )
    if problems:
        print(f"Answers DISAGREE ({len(problems)}):")
        for problem in problems[:20]:
            print(f"  {problem}")
    else:
        raw_p95 = raw_answers["summary"].percentile(95)
        print(
            f"Answers agree: {checked}: spend and requests exactly (summary spend {summary_totals['spend']} "
            f"= raw {raw_answers['summary'].spend}), p50/p95/p99 in the bucket of the exact raw value "
            f"(summary p95 {summary_totals['latency_p95_ms']} ms, raw {raw_p95} ms)."
        )
    memory = (
        f"Peak memory: gunicorn worker {worker_mb:.0f} MB (VmHWM)"
        if worker_mb is not None
        else "Peak memory: (no gunicorn run)"
    )
    print(
        f"{memory}; this process (in-process requests, before the raw passes) {inprocess_mb:.0f} MB (ru_maxrss)."
    )

    web_mb = worker_mb if worker_mb is not None else inprocess_mb
    targets = [
        (f"dashboard p95 < {DASHBOARD_TARGET_MS} ms", rollup["dashboard"].p95 < DASHBOARD_TARGET_MS),
        (f"summary p95 < {SUMMARY_TARGET_MS} ms", rollup["summary"].p95 < SUMMARY_TARGET_MS),
        (f"summary group_by=day p95 < {SUMMARY_TARGET_MS} ms", rollup["day"].p95 < SUMMARY_TARGET_MS),
        (f"raw/rollup ≥ {RATIO_TARGET}× (each kind)", min(ratios.values()) >= RATIO_TARGET),
        (f"web process peak < {MEMORY_TARGET_MB} MB", web_mb < MEMORY_TARGET_MB),
        ("answers agree", not problems),
    ]
    print("Targets: " + "; ".join(f"{name} {'met' if ok else 'MISSED'}" for name, ok in targets))
    print(f"Run time: {time.perf_counter() - began:.0f} s.")
    return 0 if all(ok for _, ok in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
