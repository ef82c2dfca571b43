import json
import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.audit.models import AuditEvent
from apps.common.exceptions import Conflict, PermissionDenied
from apps.costs import latency
from apps.costs.models import Budget, BudgetAlert, BudgetRaise, Granularity, Price, RaiseStatus, UsageRollup
from apps.costs.pricing import PriceBook
from apps.costs.services import (
    budget_create,
    budget_evaluate,
    budget_raise_request,
    exhausted_budgets,
    price_set,
    usage_recompute,
    usage_rollup,
)
from apps.logs.models import LogEvent
from apps.logs.services import log_events_scan
from apps.workflows.services import approval_decision_record
from tests.factories import make_token

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def test_seeded_vertex_prices_are_in_effect(db):
    book = PriceBook(["gemini-2.5-flash"])
    assert book.cost("gemini-2.5-flash", T0, 1000, 1000) == Decimal("0.0028")  # 0.30 + 2.50 per 1M


def test_prices_are_effective_dated_and_history_is_kept(world):
    price_set(
        actor=world.admin,
        key="m",
        effective_from=T0,
        input_per_1k=Decimal("0.001"),
        output_per_1k=Decimal("0.002"),
    )
    price_set(
        actor=world.admin,
        key="m",
        effective_from=T0 + timedelta(days=10),
        input_per_1k=Decimal("0.01"),
        output_per_1k=Decimal("0.02"),
    )
    book = PriceBook(["m"])
    assert book.cost("m", T0 - timedelta(seconds=1), 1000, 1000) is None  # before any price: unpriced
    assert book.cost("m", T0, 1000, 1000) == Decimal("0.003")
    assert book.cost("m", T0 + timedelta(days=10) - timedelta(microseconds=1), 1000, 0) == Decimal("0.001")
    assert book.cost("m", T0 + timedelta(days=10), 1000, 0) == Decimal("0.01")
    assert Price.objects.get(key="m", effective_from=T0).effective_to == T0 + timedelta(days=10)
    with pytest.raises(Conflict):
        price_set(actor=world.admin, key="m", effective_from=T0 + timedelta(days=5))
    with pytest.raises(PermissionDenied):
        price_set(actor=world.owner, key="x", effective_from=T0)
    assert AuditEvent.objects.filter(action="costs.price_set").count() == 2


def _store(world, *events):

    client = __import__("rest_framework.test", fromlist=["APIClient"]).APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(world.eng, world.support, 'logs:write')}")

    response = client.post(
        "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))


def ev(rid, model="gemini-2.5-flash", at=T0, tokens=(1000, 1000), latency_ms=1000, status="ok", app="bot"):
    return {
        "request_id": rid,
        "started_at": at.isoformat(),
        "model": model,
        "input": "hi",
        "app": app,
        "tokens_in": tokens[0],
        "tokens_out": tokens[1],
        "latency_ms": latency_ms,
        "status": status,
    }


def test_events_get_their_cost_when_stored_and_unknown_models_are_unpriced(world):
    _store(world, ev("a"), ev("b", model="my-own-model"))
    assert LogEvent.objects.get(request_id="a").cost == Decimal("0.0028")
    assert LogEvent.objects.get(request_id="b").cost is None  # unpriced, never zero
    usage_rollup()
    row = UsageRollup.objects.get(granularity=Granularity.HOUR, model="my-own-model")
    assert (row.requests, row.unpriced_requests, row.cost) == (1, 1, Decimal(0))


def test_rollups_per_hour_and_day_and_rerunning_changes_nothing(world):
    _store(
        world,
        ev("a"),
        ev("b", at=T0 + timedelta(minutes=10), status="error", latency_ms=3000),
        ev("c", at=T0 + timedelta(hours=2)),
    )
    assert usage_rollup() == 2
    snapshot = sorted(UsageRollup.objects.values_list("granularity", "bucket", "requests", "errors", "cost"))
    assert snapshot == [
        ("day", datetime(2026, 11, 2, tzinfo=UTC), 3, 1, Decimal("0.0084")),
        ("hour", datetime(2026, 11, 2, 9, tzinfo=UTC), 2, 1, Decimal("0.0056")),
        ("hour", datetime(2026, 11, 2, 11, tzinfo=UTC), 1, 0, Decimal("0.0028")),
    ]
    assert usage_rollup() == 0
    usage_recompute(since=T0 - timedelta(days=1), until=T0 + timedelta(days=1))
    assert (
        sorted(UsageRollup.objects.values_list("granularity", "bucket", "requests", "errors", "cost"))
        == snapshot
    )
    nine = UsageRollup.objects.get(granularity=Granularity.HOUR, bucket=datetime(2026, 11, 2, 9, tzinfo=UTC))
    assert latency.percentile(nine.latency, 50) == pytest.approx(1000, rel=0.05)
    assert latency.percentile(nine.latency, 95) == pytest.approx(3000, rel=0.05)


def test_latency_percentiles_merge_exactly():
    a = {latency.bucket_of(ms): 1 for ms in (10, 20, 30)}
    b = {latency.bucket_of(ms): 1 for ms in (40, 5000)}
    merged = latency.merge([a, b])
    assert latency.percentile(merged, 50) == pytest.approx(30, rel=0.05)
    assert latency.percentile(merged, 100) == pytest.approx(5000, rel=0.05)
    assert latency.percentile({}, 50) is None


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.tuples(
            st.integers(0, 71),
            st.sampled_from(["gemini-2.5-flash", "gemini-2.5-pro", "x"]),
            st.integers(0, 5000),
            st.integers(0, 5000),
            st.integers(1, 60_000),
            st.booleans(),
            st.sampled_from(["bot", "mail"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_rollups_equal_a_recomputation_from_raw_events(world, rows):
    LogEvent.objects.all().delete()
    UsageRollup.objects.all().delete()
    events = [
        ev(
            f"r{i}",
            model=m,
            at=T0 + timedelta(minutes=h * 37),
            tokens=(ti, to),
            latency_ms=lat,
            status="error" if err else "ok",
            app=app,
        )
        for i, (h, m, ti, to, lat, err, app) in enumerate(rows)
    ]
    _store(world, *events)
    usage_rollup()
    raw = LogEvent.objects.all()
    days = UsageRollup.objects.filter(granularity=Granularity.DAY)
    assert sum(r.requests for r in days) == raw.count()
    assert sum(r.errors for r in days) == raw.exclude(status="ok").count()
    assert sum(r.tokens_in for r in days) == sum(e.tokens_in for e in raw)
    assert sum(r.cost for r in days) == sum((e.cost or Decimal(0)) for e in raw)
    assert sum(r.unpriced_requests for r in days) == raw.filter(cost__isnull=True).count()
    for app in ("bot", "mail"):
        subset = [e.latency_ms for e in raw if e.app == app]
        merged = latency.merge(r.latency for r in days if r.app == app)
        if subset:
            true_p95 = sorted(subset)[max(0, -(-95 * len(subset) // 100) - 1)]
            assert true_p95 <= latency.percentile(merged, 95) <= true_p95 * 1.05 + 1


@pytest.fixture
def budget(world):
    return budget_create(
        actor=world.owner,
        team=world.support,
        name="monthly",
        amount=Decimal("0.01"),
        thresholds=[50, 80, 100],
        hard_limit=True,
        recipients=["owner@example.com"],
    )


def test_thresholds_fire_once_and_the_hard_limit_holds_at_exactly_the_amount(
    world, budget, mailoutbox, django_capture_on_commit_callbacks
):
    now = timezone.now()
    _store(world, ev("a", at=now, tokens=(10_000, 0)))  # 0.003 = 30 %
    usage_rollup()
    budget_evaluate(budget=budget)
    assert not BudgetAlert.objects.exists()
    _store(world, ev("b", at=now, tokens=(10_000, 0)), ev("c", at=now, tokens=(10_000, 0)))  # 90 %
    usage_rollup()
    state = budget_evaluate(budget=budget)
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80]
    assert not state.exhausted and exhausted_budgets(team_id=world.support.pk) == []
    _store(world, ev("d", at=now, tokens=(0, 400)))  # 0.009 + 0.001 = exactly 0.01
    usage_rollup()
    budget_evaluate(budget=budget)
    state = budget_evaluate(budget=budget)  # evaluating again fires nothing new
    assert state.spend == Decimal("0.01") and state.exhausted
    assert sorted(BudgetAlert.objects.values_list("threshold", flat=True)) == [50, 80, 100]
    assert AuditEvent.objects.filter(action="costs.budget_alert").count() == 3
    from django.core.cache import cache

    cache.clear()
    (blocked,) = exhausted_budgets(team_id=world.support.pk)
    assert (blocked.name, blocked.amount, blocked.spend) == ("monthly", "0.01", "0.01000000")


@pytest.mark.django_db(transaction=True)
def test_an_alert_fires_exactly_once_with_concurrent_workers():
    from tests.factories import make_world

    world = make_world()
    budget = budget_create(
        actor=world.owner, team=world.support, name="b", amount=Decimal("1"), thresholds=[1]
    )
    UsageRollup.objects.create(
        granularity=Granularity.HOUR,
        bucket=timezone.now().replace(minute=0, second=0, microsecond=0),
        team=world.support,
        model="m",
        requests=1,
        cost=Decimal("0.5"),
    )
    barrier = threading.Barrier(4)

    def evaluate():
        try:
            barrier.wait(timeout=10)
            budget_evaluate(budget=Budget.objects.get(pk=budget.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert BudgetAlert.objects.count() == 1
    assert AuditEvent.objects.filter(action="costs.budget_alert").count() == 1


def test_a_raise_goes_through_approval_and_lifts_the_hard_limit(world, budget):
    _store(world, ev("a", at=timezone.now(), tokens=(40_000, 0)))  # 0.012 > 0.01
    usage_rollup()
    assert budget_evaluate(budget=budget).exhausted
    with pytest.raises(PermissionDenied):
        budget_raise_request(actor=world.eng, budget=budget, extra_amount=Decimal("1"), reason="launch")
    request = budget_raise_request(
        actor=world.owner, budget=budget, extra_amount=Decimal("1"), reason="launch week"
    )
    with pytest.raises(PermissionDenied):  # four eyes
        approval_decision_record(request_id=request.pk, reviewer=world.owner, decision="approve")
    approval_decision_record(request_id=request.pk, reviewer=world.gov, decision="approve", comment="ok")
    assert BudgetRaise.objects.get().status == RaiseStatus.APPROVED
    state = budget.states.get()
    assert not state.exhausted and state.limit == Decimal("1.01")
    assert AuditEvent.objects.filter(action="costs.raise_decided").exists()


def test_only_managers_create_budgets(world):
    for username in ("eng", "gov", "ann1", "fin_eng"):
        with pytest.raises(PermissionDenied):
            budget_create(actor=world.users[username], team=world.support, name="x", amount=Decimal(1))
    assert not Budget.objects.exists()


def test_summary_reads_whole_days_and_partial_edges_exactly(world):
    from apps.costs.selectors import CostFilters, costs_summary

    stamps = [T0 - timedelta(days=2, hours=5), T0 - timedelta(days=1), T0, T0 + timedelta(hours=3)]
    _store(world, *[ev(f"e{i}", at=at, latency_ms=100 * (i + 1)) for i, at in enumerate(stamps)])
    usage_rollup()
    since, until = T0 - timedelta(days=2, hours=6), T0 + timedelta(hours=1)  # excludes the last event
    summary = costs_summary(user=world.owner, filters=CostFilters(since=since, until=until), group_by="day")
    assert summary["totals"]["requests"] == 3
    assert summary["totals"]["spend"] == Decimal("0.0084")
    assert [g["requests"] for g in summary["groups"]] == [1, 1, 1]
    assert (
        costs_summary(user=world.fin_eng, filters=CostFilters(since=since, until=until))["totals"]["requests"]
        == 0
    )
    assert (
        costs_summary(user=world.ann1, filters=CostFilters(since=since, until=until))["totals"]["requests"]
        == 0
    )


def test_rollup_usage_command_rebuilds_a_range(world, capsys):
    from django.core.management import call_command

    _store(world, ev("a"), ev("b", at=T0 + timedelta(hours=1)))
    call_command("rollup_usage")
    assert "2 pending hours rebuilt" in capsys.readouterr().out
    before = sorted(UsageRollup.objects.values_list("granularity", "bucket", "requests", "cost"))
    UsageRollup.objects.filter(granularity=Granularity.HOUR).update(requests=999)  # a damaged rollup
    call_command("rollup_usage", "--since", "2026-11-02", "--until", "2026-11-03", "--team", "support")
    assert "24 hours rebuilt" in capsys.readouterr().out
    assert sorted(UsageRollup.objects.values_list("granularity", "bucket", "requests", "cost")) == before
