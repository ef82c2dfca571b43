"""seed_usage: synthetic stored events whose costs, buckets and rollups are what the pipeline would give."""

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Team
from apps.costs import latency
from apps.costs.models import DirtyHour, Granularity, UsageRollup
from apps.costs.pricing import PriceBook
from apps.costs.services import usage_recompute
from apps.logs.models import EventState, LogEvent

END = datetime(2026, 11, 2, 12, 30, tzinfo=UTC)
EIGHT_PLACES = Decimal("1e-8")


def seed(events=3000, **options):
    out = StringIO()
    options = {"team": "synth", "days": 3, "seed": 7, "end": END.isoformat(), **options}
    call_command("seed_usage", events=events, stdout=out, **options)
    return out.getvalue()


def snapshot():
    return sorted(
        (
            r.granularity,
            r.bucket,
            r.team_id,
            r.app,
            r.model,
            r.prompt,
            r.prompt_version,
            r.requests,
            r.errors,
            r.pii_requests,
            r.unpriced_requests,
            r.tokens_in,
            r.tokens_out,
            r.cost,
            sorted((int(b), c) for b, c in r.latency.items()),
        )
        for r in UsageRollup.objects.all()
    )


def test_events_are_stored_spread_over_the_range_and_priced_like_the_pipeline(db):
    output = seed()
    assert "Wrote 3,000 stored events for team synth" in output
    team = Team.objects.get(slug="synth")
    events = list(LogEvent.objects.filter(team=team))
    assert len(events) == 3000
    assert {e.state for e in events} == {EventState.STORED}
    assert all(END - timedelta(days=3) <= e.started_at < END for e in events)
    assert len({e.started_at.date() for e in events}) == 4  # three days from 12:30 touch four dates
    assert len({(e.app, e.prompt, e.prompt_version, e.model) for e in events}) >= 8
    assert {e.status for e in events} >= {"ok", "error"}
    assert 0 < sum(e.has_pii for e in events) < 300
    assert all(e.input is None and e.output == "" and e.search_text == "" for e in events)  # no text
    book = PriceBook({e.model for e in events})
    unpriced = 0
    for e in events:
        assert e.latency_bucket == latency.bucket_of(e.latency_ms)
        assert e.ended_at == e.started_at + timedelta(milliseconds=e.latency_ms)
        expected = book.cost(e.model, e.started_at, e.tokens_in, e.tokens_out)
        if expected is None:
            assert e.cost is None
            unpriced += 1
        else:
            assert e.cost == expected.quantize(EIGHT_PLACES)  # the cost column's 8 places
    assert 0 < unpriced < 300
    assert not DirtyHour.objects.exists()


def test_rollups_equal_a_recomputation_and_the_raw_events(db):
    seed()
    seeded = snapshot()
    assert {row[0] for row in seeded} == {Granularity.HOUR, Granularity.DAY}
    # What the beat's rollup computes from the same stored events, from scratch.
    UsageRollup.objects.all().delete()
    usage_recompute(since=END - timedelta(days=4), until=END + timedelta(days=1))
    assert snapshot() == seeded
    # And both equal the raw events, aggregated here in Python.
    expected: dict[tuple, list] = defaultdict(lambda: [0, 0, 0, 0, 0, 0, Decimal(0), defaultdict(int)])
    for e in LogEvent.objects.all():
        hour = e.started_at.replace(minute=0, second=0, microsecond=0)
        for granularity, bucket in (("hour", hour), ("day", hour.replace(hour=0))):
            row = expected[(granularity, bucket, e.team_id, e.app, e.model, e.prompt, e.prompt_version)]
            row[0] += 1
            row[1] += e.status != "ok"
            row[2] += e.has_pii
            row[3] += e.cost is None
            row[4] += e.tokens_in
            row[5] += e.tokens_out
            row[6] += e.cost or Decimal(0)
            row[7][e.latency_bucket] += 1
    assert seeded == sorted((*key, *row[:7], sorted(row[7].items())) for key, row in expected.items())


def test_a_second_run_is_refused_unless_appended_and_the_seed_repeats(db):
    seed(events=500)
    with pytest.raises(CommandError, match="--append"):
        seed(events=500)
    first = list(LogEvent.objects.order_by("id").values_list("started_at", "model", "tokens_in", "cost"))
    seed(events=500, append=True)
    assert LogEvent.objects.count() == 1000
    assert len(set(LogEvent.objects.values_list("request_id", flat=True))) == 1000
    second = list(LogEvent.objects.order_by("id").values_list("started_at", "model", "tokens_in", "cost"))[
        500:
    ]
    assert second == first  # same seed, same events (new request ids)
    day = UsageRollup.objects.filter(granularity=Granularity.DAY)
    assert sum(r.requests for r in day) == 1000
