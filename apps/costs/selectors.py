"""Reads of costs, from the rollups (never from the raw events): summaries, series and budgets."""

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.accounts.models import User
from apps.accounts.roles import Role
from apps.accounts.selectors import user_team_ids
from apps.common.exceptions import ApplicationError
from apps.costs import latency
from apps.costs.models import Budget, BudgetAlert, BudgetRaise, BudgetState, Granularity, Price, UsageRollup
from apps.costs.periods import period_bounds

COST_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.PRODUCT_OWNER, Role.ENGINEER})
GROUP_BY = ("team", "app", "model", "prompt", "prompt_version", "day", "hour")


@dataclass(frozen=True)
class CostFilters:
    since: datetime
    until: datetime
    team_ids: tuple[int, ...] = ()
    app: str = ""
    model: str = ""
    prompt: str = ""


def _day(at: datetime) -> datetime:
    return at.replace(hour=0, minute=0, second=0, microsecond=0)


def _ceil_day(at: datetime) -> datetime:
    day = _day(at)
    return day if day == at else day + timedelta(days=1)


def rollups_for(*, user: User, filters: CostFilters) -> QuerySet[UsageRollup]:
    """The rollups covering [since, until) exactly: whole days from day rollups, the partial days at
    either end from hour rollups (hour-aligned bounds; a partial hour counts whole)."""
    allowed = set(user_team_ids(user, COST_READERS))
    teams = [t for t in filters.team_ids if t in allowed] if filters.team_ids else list(allowed)
    since = filters.since.replace(minute=0, second=0, microsecond=0)
    until = filters.until
    first_day, last_day = _ceil_day(since), _day(until)
    # The teams inside each range, so that each one is a search of the (granularity, team, bucket)
    # index: with the teams outside, SQLite read every rollup of the teams (all their hours) instead.
    if first_day < last_day:
        span = (
            Q(granularity=Granularity.DAY, team_id__in=teams, bucket__gte=first_day, bucket__lt=last_day)
            | Q(granularity=Granularity.HOUR, team_id__in=teams, bucket__gte=since, bucket__lt=first_day)
            | Q(granularity=Granularity.HOUR, team_id__in=teams, bucket__gte=last_day, bucket__lt=until)
        )
    else:
        span = Q(granularity=Granularity.HOUR, team_id__in=teams, bucket__gte=since, bucket__lt=until)
    qs = UsageRollup.objects.filter(span)
    if filters.app:
        qs = qs.filter(app=filters.app)
    if filters.model:
        qs = qs.filter(model=filters.model)
    if filters.prompt:
        qs = qs.filter(prompt=filters.prompt)
    return qs


@dataclass
class Totals:
    requests: int = 0
    errors: int = 0
    pii_requests: int = 0
    unpriced_requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    cost: Decimal = Decimal(0)
    # {bucket: count}, keys as the rollups store them (JSON: text); latency.percentile reads either.
    histogram: dict[Any, int] = field(default_factory=dict)

    def add(self, row: Any) -> None:
        self.requests += row["requests"]
        self.errors += row["errors"]
        self.pii_requests += row["pii_requests"]
        self.unpriced_requests += row["unpriced_requests"]
        self.tokens_in += row["tokens_in"]
        self.tokens_out += row["tokens_out"]
        self.cost += row["cost"]
        self._merge(row["latency"])

    def add_totals(self, other: "Totals") -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.pii_requests += other.pii_requests
        self.unpriced_requests += other.unpriced_requests
        self.tokens_in += other.tokens_in
        self.tokens_out += other.tokens_out
        self.cost += other.cost
        self._merge(other.histogram)

    def _merge(self, histogram: dict[Any, int]) -> None:
        # The hot loop of every summary: no key conversion here (see latency.percentile).
        mine = self.histogram
        get = mine.get
        for bucket, count in histogram.items():
            mine[bucket] = get(bucket, 0) + count

    def as_dict(self) -> dict[str, Any]:
        tokens = self.tokens_in + self.tokens_out
        histogram = {int(bucket): count for bucket, count in self.histogram.items()}
        return {
            "spend": self.cost,
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.errors / self.requests if self.requests else None,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_per_1k_tokens": (self.cost * 1000 / tokens) if tokens else None,
            "unpriced_requests": self.unpriced_requests,
            "pii_rate": self.pii_requests / self.requests if self.requests else None,
            "latency_p50_ms": latency.percentile(histogram, 50),
            "latency_p95_ms": latency.percentile(histogram, 95),
            "latency_p99_ms": latency.percentile(histogram, 99),
        }


FIGURES = (
    "requests",
    "errors",
    "pii_requests",
    "unpriced_requests",
    "tokens_in",
    "tokens_out",
    "cost",
    "latency",
)
KEY_FIELDS = {"team": ("team__slug",), "day": ("bucket",), "hour": ("bucket", "granularity")}


def _rollup_rows(user: User, filters: CostFilters, group_bys: Sequence[str]) -> Iterator[dict[str, Any]]:
    """The rollup rows of the filters with only the fields the groups need (no join to the teams, no
    date-times to convert, when no group needs them)."""
    keys = dict.fromkeys(f for g in group_bys for f in KEY_FIELDS.get(g, (g,)))
    return rollups_for(user=user, filters=filters).values(*keys, *FIGURES).iterator(chunk_size=5000)


def costs_summary(*, user: User, filters: CostFilters, group_by: str = "") -> dict[str, Any]:
    """Totals over the range and, with group_by, the same figures per group (sorted by spend)."""
    if group_by:
        breakdown = costs_breakdown(user=user, filters=filters, group_bys=(group_by,))
        return {**breakdown, "groups": breakdown["groups"][group_by]}
    totals = Totals()
    for row in _rollup_rows(user, filters, ()):
        totals.add(row)
    return {"since": filters.since, "until": filters.until, "totals": totals.as_dict()}


def _group_key(row: dict[str, Any], group_by: str, days: dict[datetime, str]) -> Any:
    if group_by == "team":
        return row["team__slug"]
    if group_by == "day":
        bucket = row["bucket"]
        day = days.get(bucket)
        if day is None:
            day = days[bucket] = _day(timezone.localtime(bucket)).date().isoformat()
        return day
    if group_by == "hour":
        return (
            row["bucket"].isoformat()
            if row["granularity"] == Granularity.HOUR
            else _day(row["bucket"]).isoformat()
        )
    return row[group_by]


def costs_can_read(*, user: User) -> bool:
    """Whether the user reads costs in any team (prices are organisation-wide; everything else is per team)."""
    return bool(user_team_ids(user, COST_READERS))


def budget_list(*, user: User, team_id: int | None = None) -> QuerySet[Budget]:
    qs = Budget.objects.filter(team_id__in=user_team_ids(user, COST_READERS)).select_related("team")
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    return qs.order_by("team__slug", "name")


def budget_get(*, user: User, budget_id: int) -> Budget | None:
    """A budget the user may read (a cost reader of its team), or None."""
    return budget_list(user=user).filter(pk=budget_id).first()


def budget_current(*, budget: Budget, now: datetime | None = None) -> dict[str, Any]:
    """This period's spend, limit, percent used and a run-rate forecast of the spend at period end."""
    now = now or timezone.now()
    start, end = period_bounds(budget.period, now)
    state = BudgetState.objects.filter(budget=budget, period_start=start).first()
    return _current(budget, state, start, end, now)


def price_list(
    *, user: User, kind: str = "", key: str = "", history: bool = False, now: datetime | None = None
) -> QuerySet[Price]:
    """Price rows, for cost readers of any team: those not yet ended (in effect now, or scheduled to start
    later) unless `history` asks for every row, ended ones included."""
    if not costs_can_read(user=user):
        return Price.objects.none()
    qs = Price.objects.select_related("created_by")
    if kind:
        qs = qs.filter(kind=kind)
    if key:
        qs = qs.filter(key=key)
    if not history:
        qs = qs.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=now or timezone.now()))
    return qs


# For the console's pages (apps/costs/views.py): several breakdowns in one read, budgets in bulk, and
# the lists the pages show.


def costs_breakdown(*, user: User, filters: CostFilters, group_bys: Sequence[str]) -> dict[str, Any]:
    """What costs_summary gives, for several group_by at once, in one pass over the rollups (one
    query): a dashboard with many charts reads the rollups once. Same figures as costs_summary."""
    unknown = set(group_bys) - set(GROUP_BY)
    if unknown:
        raise ValueError(f"Unknown group_by: {', '.join(sorted(unknown))}")
    totals = Totals()
    groups: dict[str, dict[Any, Totals]] = {g: defaultdict(Totals) for g in group_bys}
    days: dict[datetime, str] = {}  # rows share buckets: each one's local day computed once
    for row in _rollup_rows(user, filters, group_bys):
        for group_by, by_key in groups.items():
            by_key[_group_key(row, group_by, days)].add(row)
        if not group_bys:
            totals.add(row)
    if group_bys:  # every row is in exactly one group of each group_by: the totals are their sum
        for group in groups[group_bys[0]].values():
            totals.add_totals(group)
    return {
        "since": filters.since,
        "until": filters.until,
        "totals": totals.as_dict(),
        "groups": {
            group_by: [{"key": key, **g.as_dict()} for key, g in _ordered(group_by, by_key)]
            for group_by, by_key in groups.items()
        },
    }


def _ordered(group_by: str, groups: dict[Any, Totals]) -> list[tuple[Any, Totals]]:
    if group_by in {"day", "hour"}:
        return sorted(groups.items(), key=lambda kv: (kv[0] is None, str(kv[0])))
    return sorted(groups.items(), key=lambda kv: -kv[1].cost)


def cost_filter_values(*, user: User, filters: CostFilters) -> dict[str, list[str]]:
    """The apps, models and prompts with usage in the filters' teams and range (for the filter lists)."""
    scope = CostFilters(since=filters.since, until=filters.until, team_ids=filters.team_ids)
    apps: set[str] = set()
    models: set[str] = set()
    prompts: set[str] = set()
    for app, model, prompt in (
        rollups_for(user=user, filters=scope).values_list("app", "model", "prompt").distinct()
    ):
        apps.add(app)
        models.add(model)
        prompts.add(prompt)
    return {
        "apps": sorted(a for a in apps if a),
        "models": sorted(m for m in models if m),
        "prompts": sorted(p for p in prompts if p),
    }


def budgets_current(*, budgets: Sequence[Budget], now: datetime | None = None) -> dict[int, dict[str, Any]]:
    """budget_current for several budgets, with one query for their states."""
    now = now or timezone.now()
    bounds = {b.pk: period_bounds(b.period, now) for b in budgets}
    wanted = Q(pk__in=[])
    for budget in budgets:
        wanted |= Q(budget_id=budget.pk, period_start=bounds[budget.pk][0])
    states = {s.budget_id: s for s in BudgetState.objects.filter(wanted)} if budgets else {}
    return {b.pk: _current(b, states.get(b.pk), *bounds[b.pk], now) for b in budgets}


def _current(
    budget: Budget, state: BudgetState | None, start: datetime, end: datetime, now: datetime
) -> dict[str, Any]:
    spend = state.spend if state else Decimal(0)
    limit = state.limit if state else budget.amount
    elapsed = max((now - start).total_seconds(), 1.0)
    forecast = spend * Decimal((end - start).total_seconds() / elapsed)
    return {
        "period_start": start,
        "period_end": end,
        "spend": spend,
        "limit": limit,
        "percent": float(spend * 100 / limit) if limit else None,
        "forecast": forecast,
        "exhausted": bool(state and state.exhausted),
    }


def budget_alert_list(*, budget: Budget, limit: int = 50) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.filter(budget=budget).order_by("-fired_at", "-pk")[:limit]


def budget_raise_list(*, budget: Budget, limit: int = 50) -> QuerySet[BudgetRaise]:
    """The budget's raises, newest first, each with `approval_id`: its approval request."""
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import OuterRef, Subquery

    from apps.workflows.models import ApprovalRequest

    requests = ApprovalRequest.objects.filter(
        content_type=ContentType.objects.get_for_model(BudgetRaise), object_id=OuterRef("pk")
    ).order_by("-created_at", "-pk")
    return (
        BudgetRaise.objects.filter(budget=budget)
        .select_related("requested_by")
        .annotate(approval_id=Subquery(requests.values("pk")[:1]))
        .order_by("-created_at", "-pk")[:limit]
    )


class BudgetExhausted(ApplicationError):
    """A hard budget is spent: applications must stop spending (resolve answers 429)."""

    status_code = 429
    default_code = "budget_exhausted"


def budget_check_hard_limits(*, team_id: int, prompt: str = "", app: str = "") -> None:
    """Raise BudgetExhausted when a hard budget of the team that covers this call is spent: team-wide
    budgets always, a prompt's or an app's budget when the call is for that prompt or app. Read on every
    resolve, from a few seconds' cache (apps.costs.services.exhausted_budgets)."""
    from apps.costs.services import exhausted_budgets

    for budget in exhausted_budgets(team_id=team_id):
        if (budget.prompt and budget.prompt != prompt) or (budget.app and budget.app != app):
            continue
        raise BudgetExhausted(
            f"The hard budget {budget.name!r} is spent ({budget.spend} of {budget.amount} "
            f"{settings.COSTS_CURRENCY}) until {budget.period_end}.",
            details={
                "budget": budget.name,
                "amount": budget.amount,
                "spend": budget.spend,
                "currency": settings.COSTS_CURRENCY,
                "period_end": budget.period_end,
                "app": budget.app or None,
                "prompt": budget.prompt or None,
            },
        )


def budget_alerts_unsent(*, older_than_seconds: int = 60, limit: int = 200) -> list[int]:
    """Alerts fired but never sent (the notification could not be queued): for beat to send again."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    return list(
        BudgetAlert.objects.filter(notified_at__isnull=True, fired_at__lt=cutoff).values_list(
            "pk", flat=True
        )[:limit]
    )
