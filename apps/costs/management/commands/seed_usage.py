"""Synthetic stored events for the costs dashboards and bench/dashboards.py.

    python manage.py seed_usage --events 10000000                 # team "support", 30 days up to now
    python manage.py seed_usage --events 200000 --team finance --days 7 --seed 3 --append

What one run writes:

- `--events` stored (redacted) events of one team spread over the last `--days` days: more traffic in
  working hours and on weekdays, a slow growth, several apps, prompts and prompt versions (a version
  rolled out half-way through), five priced Vertex models and one unpriced fine-tune; lognormal token
  counts and latencies, errors and timeouts (an incident with more of them), some events flagged as
  having had PII. No text: a synthetic event has nothing to redact, so its text columns are empty.
- Each event's cost from the price table in effect at its time (the same effective-dated prices as
  apps.costs.pricing.PriceBook), computed vectorised and kept to the cost column's 8 decimal places;
  latency buckets with apps.costs.latency.bucket_of. An unpriced model's events have no cost.
- The rows are written in time order with one `executemany` per slice, one transaction per day (on
  SQLite, `synchronous=OFF` and a large page cache only while the command runs).
- Then the rollups of the whole range are rebuilt with the service that beat runs
  (apps.costs.services.usage_recompute: one SQL GROUP BY per hour, each day once), so they are exactly
  what the incremental rollup computes.

Events get request ids `synthetic-<run>-<n>`. A team that already has synthetic events is refused unless
`--append` is given (then a new run is added beside the old ones).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.accounts.models import Team
from apps.costs import latency
from apps.costs.models import Price, PriceKind
from apps.costs.services import usage_recompute
from apps.logs.models import LogEvent

PREFIX = "synthetic-"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR_US = 3_600_000_000
DAY_US = 24 * HOUR_US
MAX_LATENCY_MS = 120_000
SLICE = 100_000  # rows per executemany


@dataclass(frozen=True)
class Route:
    """One kind of call: which app calls which prompt version on which model, and how it behaves."""

    app: str
    prompt: str
    version: int | None
    model: str
    share: float  # of all traffic
    tokens_in: int  # medians
    tokens_out: int
    base_ms: float  # latency: base + per output token, times a lognormal factor
    ms_per_token: float
    error_rate: float
    pii_rate: float
    rollout: str = ""  # "old": replaced half-way through the range; "new": the version replacing it


ROUTES = (
    Route(
        "support-bot", "support-reply", 3, "gemini-2.5-flash", 0.30, 900, 180, 350, 4.0, 0.010, 0.060, "old"
    ),
    Route(
        "support-bot", "support-reply", 4, "gemini-2.5-flash", 0.0, 1100, 200, 380, 4.0, 0.008, 0.060, "new"
    ),
    Route("support-bot", "triage", 1, "gemini-2.5-flash-lite", 0.16, 400, 20, 120, 2.0, 0.004, 0.050),
    Route("summarizer", "ticket-summary", 2, "gemini-2.5-pro", 0.08, 3000, 350, 900, 9.0, 0.015, 0.080),
    Route("summarizer", "ticket-summary", 2, "gemini-2.5-flash", 0.08, 3000, 300, 420, 4.0, 0.010, 0.080),
    Route("invoices", "invoice-fields", 5, "gemini-2.0-flash", 0.12, 1800, 120, 300, 3.0, 0.012, 0.020),
    Route("invoices", "invoice-fields", 5, "gemini-2.0-flash-lite", 0.06, 1800, 120, 250, 2.5, 0.020, 0.020),
    Route("search", "query-rewrite", 1, "gemini-2.5-flash-lite", 0.16, 150, 40, 90, 1.5, 0.003, 0.010),
    Route("lab", "", None, "acme-ft-7b", 0.04, 600, 250, 200, 6.0, 0.030, 0.0),  # unpriced: no price row
)
ERROR_STATUSES = ("error", "timeout", "rate_limited")
PII_TYPES = ('["EMAIL_ADDRESS"]', '["PHONE_NUMBER"]', '["PERSON_NAME"]', '["EMAIL_ADDRESS", "PERSON_NAME"]')

COLUMNS = (
    "team_id",
    "request_id",
    "app",
    "prompt",
    "prompt_version",
    "model",
    "started_at",
    "ended_at",
    "received_at",
    "stored_at",
    "tokens_in",
    "tokens_out",
    "latency_ms",
    "status",
    "cost",
    "latency_bucket",
    "has_pii",
    "pii_types",
)
CONSTANTS = {  # every other NOT NULL column: what a stored, redacted event without text has
    "state": "'stored'",
    "output": "''",
    "error": "''",
    "metadata": "'{}'",
    "end_user": "''",
    "search_text": "''",
    "redaction_mode": "'replace'",
    "scanner": "'synthetic'",
    "attempts": "0",
    "last_error": "''",
}


def _us(at: datetime) -> int:
    return (at - EPOCH) // timedelta(microseconds=1)


@contextmanager
def _fast_writes() -> Iterator[None]:
    """On SQLite, no fsync and a large page cache while the command writes; the settings are restored.
    (Not inside a caller's transaction, where SQLite cannot change them.)"""
    saved: dict[str, int] = {}
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        with connection.cursor() as cursor:
            for pragma, value in (("synchronous", 0), ("cache_size", -1_000_000)):
                cursor.execute(f"PRAGMA {pragma}")
                saved[pragma] = int(cursor.fetchone()[0])
                cursor.execute(f"PRAGMA {pragma} = {value}")
    try:
        yield
    finally:
        if saved:
            with connection.cursor() as cursor:
                for pragma, value in saved.items():
                    cursor.execute(f"PRAGMA {pragma} = {value}")


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:  # pragma: no cover - numpy comes with the dev dependencies
        raise CommandError("seed_usage needs numpy: pip install -e '.[dev]'") from None
    return numpy


class Command(BaseCommand):
    help = "Write synthetic stored events (no text) for one team and rebuild their rollups."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--events", type=int, default=100_000, help="How many events (default 100,000).")
        parser.add_argument("--team", default="support", help="Team slug (created when missing).")
        parser.add_argument("--days", type=int, default=30, help="Spread over this many days up to --end.")
        parser.add_argument("--seed", type=int, default=1, help="Random seed (same seed, same events).")
        parser.add_argument("--end", default="", help="ISO date-time the range ends at (default: now).")
        parser.add_argument(
            "--append", action="store_true", help="Add to a team that already has synthetic events."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        events, days = options["events"], options["days"]
        if events < 1 or days < 1:
            raise CommandError("--events and --days must be positive.")
        end = parse_datetime(options["end"]) if options["end"] else timezone.now()
        if end is None:
            raise CommandError("--end: an ISO date-time, such as 2026-11-30T12:00:00Z.")
        if timezone.is_naive(end):
            end = timezone.make_aware(end, UTC)
        end = end.astimezone(UTC)
        start = end - timedelta(days=days)
        team = Team.objects.filter(slug=options["team"]).first()
        if team is None:
            from apps.accounts.services import team_create

            team = team_create(
                actor=None, slug=options["team"], name=options["team"].replace("-", " ").title()
            )
        existing = LogEvent.objects.filter(team=team, request_id__gte=PREFIX, request_id__lt="synthetic.")
        if existing.exists() and not options["append"]:
            raise CommandError(
                f"Team {team.slug} already has synthetic events: pass --append to add another run "
                "(or use a fresh database)."
            )
        run = format(time.time_ns() // 1_000_000, "x")

        clock = time.perf_counter()
        written = self._write(team.pk, events, start, end, options["seed"], f"{PREFIX}{run}-")
        write_s = time.perf_counter() - clock
        self.stdout.write(
            f"Wrote {written:,} stored events for team {team.slug}, {start:%Y-%m-%d %H:%M} to "
            f"{end:%Y-%m-%d %H:%M} UTC, in {write_s:.1f} s ({written / write_s:,.0f} events/s)."
        )
        clock = time.perf_counter()
        hours = usage_recompute(since=start, until=end, team=team)
        rollup_s = time.perf_counter() - clock
        self.stdout.write(f"Rebuilt the rollups of {hours:,} hours (and their days) in {rollup_s:.1f} s.")
        self.stdout.write(self.style.SUCCESS(f"Done in {write_s + rollup_s:.1f} s."))

    # Writing: one transaction per day, the next day generated (in a thread) while this one is written

    def _write(
        self, team_id: int, events: int, start: datetime, end: datetime, seed: int, prefix: str
    ) -> int:
        synth = _Synthetic(team_id, events, start, end, seed, prefix)
        names = ", ".join(connection.ops.quote_name(c) for c in (*COLUMNS, *CONSTANTS))
        values = ", ".join(["%s"] * len(COLUMNS) + list(CONSTANTS.values()))
        table = connection.ops.quote_name(LogEvent._meta.db_table)
        sql = f"INSERT INTO {table} ({names}) VALUES ({values})"  # noqa: S608 - names from the model and constants # nosec B608
        written = 0
        with _fast_writes(), ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(synth.day_rows, 0, 0)
            for day in range(synth.days):
                rows = pending.result()
                if day + 1 < synth.days:
                    pending = pool.submit(synth.day_rows, day + 1, written + len(rows))
                with transaction.atomic(), connection.cursor() as cursor:
                    for i in range(0, len(rows), SLICE):
                        cursor.executemany(sql, rows[i : i + SLICE])
                written += len(rows)
                del rows
        return written


class _Synthetic:
    """The generator: hours weighted by time of day, weekday and growth, then per day vectorised draws."""

    def __init__(self, team_id: int, events: int, start: datetime, end: datetime, seed: int, prefix: str):
        np = self.np = _numpy()
        self.team_id, self.prefix = team_id, prefix
        self.rng = rng = np.random.default_rng(seed)
        start_us, end_us = _us(start), _us(end)
        self.end_us = end_us
        first_hour = start_us - start_us % HOUR_US
        slot = self.slot = np.arange(first_hour, end_us, HOUR_US, dtype=np.int64)
        self.lo, self.hi = np.maximum(slot, start_us), np.minimum(slot + HOUR_US, end_us)
        hour_of_day = (slot // HOUR_US) % 24
        weekday = (slot // DAY_US + 3) % 7  # 1970-01-01 was a Thursday: 0 is Monday
        weight = 0.25 + np.exp(-(((hour_of_day - 13.0) / 4.5) ** 2))  # busiest early afternoon (UTC)
        weight *= np.where(weekday >= 5, 0.45, 1.0)
        weight *= 1.0 + 0.5 * (slot - first_hour) / max(1, end_us - first_hour)  # growth over the range
        weight *= (self.hi - self.lo) / HOUR_US  # partial first and last hours
        self.counts = rng.multinomial(events, weight / weight.sum())
        self.incident = int(rng.integers(0, len(slot)))  # a bad afternoon: more errors for six hours
        self.day_of_slot = (slot - slot[0]) // DAY_US
        self.days = int(self.day_of_slot[-1]) + 1

        models = sorted({r.model for r in ROUTES})
        self.model_of_route = np.array([models.index(r.model) for r in ROUTES])
        self.prices = _price_segments(np, models)
        self.bucket_of = np.array([latency.bucket_of(ms) for ms in range(MAX_LATENCY_MS + 1)], dtype=np.int64)
        self.num = {
            name: np.array([getattr(r, name) for r in ROUTES], dtype=float)
            for name in ("tokens_in", "tokens_out", "base_ms", "ms_per_token", "error_rate", "pii_rate")
        }
        self.obj = {
            name: np.array([getattr(r, name) for r in ROUTES], dtype=object)
            for name in ("app", "prompt", "version", "model")
        }
        self.old = [i for i, r in enumerate(ROUTES) if r.rollout == "old"]
        self.new = [i for i, r in enumerate(ROUTES) if r.rollout == "new"]
        self.share = np.array([r.share for r in ROUTES])
        self.statuses = np.array(("ok", *ERROR_STATUSES), dtype=object)
        self.pii_types = np.array(("[]", *PII_TYPES), dtype=object)
        self.stamp_suffix = "" if connection.vendor == "sqlite" else "+00:00"

    def stamps(self, us: Any) -> list[str]:
        """UTC date-times as Django writes them to SQLite ('YYYY-MM-DD HH:MM:SS.ffffff')."""
        np = self.np
        us = us + (us % 1_000_000 == 0)  # Django writes a whole second without the fraction: avoid those
        text = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").astype("U26")
        text.view(np.uint32).reshape(-1, 26)[:, 10] = ord(" ")
        out = text.tolist()
        return [s + self.stamp_suffix for s in out] if self.stamp_suffix else out

    def day_rows(self, day: int, offset: int) -> list[tuple]:
        np, rng, num = self.np, self.rng, self.num
        in_day = self.day_of_slot == day
        per_slot = self.counts[in_day]
        n = int(per_slot.sum())
        if not n:
            return []
        lo, width = self.lo[in_day], self.hi[in_day] - self.lo[in_day]
        # Times uniform within each hour, sorted, so that every index is appended to in order.
        t = np.repeat(lo, per_slot) + (rng.random(n) * np.repeat(width, per_slot)).astype(np.int64)
        t.sort()
        # Never a whole millisecond, so that no stamp below falls on a whole second.
        t += np.where(t % 1000 == 0, np.where(t + 1 < self.end_us, 1, -1), 0)
        # Routes: the new prompt version takes over from the old one half-way through the range.
        p = self.share.copy()
        moved = min(1.0, max(0.0, ((day + 0.5) / self.days - 0.5) * 4)) * 0.9
        p[self.new] = p[self.old].sum() * moved / len(self.new)
        p[self.old] *= 1 - moved
        route = rng.choice(len(ROUTES), size=n, p=p / p.sum())
        tokens_in = np.clip(np.rint(num["tokens_in"][route] * rng.lognormal(0, 0.6, n)), 1, 32_000)
        tokens_out = np.clip(np.rint(num["tokens_out"][route] * rng.lognormal(0, 0.7, n)), 1, 8_192)
        tokens_in, tokens_out = tokens_in.astype(np.int64), tokens_out.astype(np.int64)
        hour = (t - self.slot[0]) // HOUR_US
        incident = (hour >= self.incident) & (hour < self.incident + 6)
        failed = rng.random(n) < num["error_rate"][route] * np.where(incident, 12.0, 1.0)
        status = np.where(failed, rng.choice([1, 2, 3], size=n, p=[0.6, 0.25, 0.15]), 0)
        tokens_out[failed] = 0
        ms = (num["base_ms"][route] + num["ms_per_token"][route] * tokens_out) * rng.lognormal(0, 0.35, n)
        ms = np.where(status == 2, rng.uniform(30_000, 60_000, n), ms)  # timeouts
        latency_ms = np.clip(np.rint(ms), 20, MAX_LATENCY_MS).astype(np.int64)
        pii = rng.random(n) < num["pii_rate"][route]
        pii_kind = np.where(pii, rng.integers(1, len(self.pii_types), n), 0)
        cost = _costs(np, self.prices, self.model_of_route[route], t, tokens_in, tokens_out)
        ended = t + latency_ms * 1000
        ended_at = self.stamps(ended)
        columns = [
            [self.team_id] * n,
            [f"{self.prefix}{offset + i:09d}" for i in range(n)],
            self.obj["app"][route].tolist(),
            self.obj["prompt"][route].tolist(),
            self.obj["version"][route].tolist(),
            self.obj["model"][route].tolist(),
            self.stamps(t),
            ended_at,
            ended_at,  # received when it ended
            self.stamps(ended + 1_500_000),  # stored a moment later
            tokens_in.tolist(),
            tokens_out.tolist(),
            latency_ms.tolist(),
            self.statuses[status].tolist(),
            _cost_values(np, cost),
            self.bucket_of[latency_ms].tolist(),
            pii.tolist(),
            self.pii_types[pii_kind].tolist(),
        ]
        return list(zip(*columns, strict=True))


def _price_segments(np: Any, models: list[str]) -> list[tuple[Any, ...] | None]:
    """Per model: the token prices over time, as arrays (starts, ends, input and output per 1k in units
    of 1e-8), the same rows PriceBook reads; None for a model without any price (unpriced)."""
    out: list[tuple[Any, ...] | None] = []
    for model in models:
        rows = list(Price.objects.filter(kind=PriceKind.TOKENS, key=model).order_by("effective_from"))
        if not rows:
            out.append(None)
            continue
        unit = Decimal("1e8")
        for p in rows:
            if (p.input_per_1k * unit) % 1 or (p.output_per_1k * unit) % 1:
                raise CommandError(f"Price {p} has more than 8 decimal places.")
        out.append(
            (
                np.array([_us(p.effective_from) for p in rows], dtype=np.int64),
                np.array([_us(p.effective_to) if p.effective_to else 2**62 for p in rows], dtype=np.int64),
                np.array([int(p.input_per_1k * unit) for p in rows], dtype=np.int64),
                np.array([int(p.output_per_1k * unit) for p in rows], dtype=np.int64),
            )
        )
    return out


def _costs(np: Any, prices: list, model: Any, t: Any, tokens_in: Any, tokens_out: Any) -> Any:
    """Cost per event in units of 1e-8 (-1: unpriced), rounded half to even to 8 places from the
    exact (input × price_in + output × price_out) / 1000 of the price in effect at the event's time."""
    units = np.full(len(t), -1, dtype=np.int64)
    for m, segments in enumerate(prices):
        if segments is None:
            continue
        idx = np.flatnonzero(model == m)
        if not len(idx):
            continue
        starts, ends, per_in, per_out = segments
        at = t[idx]
        seg = np.searchsorted(starts, at, side="right") - 1
        valid = seg >= 0
        seg = np.maximum(seg, 0)
        valid &= at < ends[seg]
        exact = per_in[seg] * tokens_in[idx] + per_out[seg] * tokens_out[idx]  # units of 1e-11
        q, r = np.divmod(exact, 1000)
        q += (r > 500) | ((r == 500) & (q % 2 == 1))
        units[idx] = np.where(valid, q, -1)
    return units


def _cost_values(np: Any, units: Any) -> list[float | None]:
    values = (units / 1e8).tolist()
    for i in np.flatnonzero(units < 0).tolist():
        values[i] = None
    return values
