"""Writes for costs: prices, rollups, budgets (alerts, hard limits) and budget raises."""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import Role
from apps.accounts.selectors import user_has_role, user_is_admin_anywhere
from apps.audit.services import audit_event_record
from apps.common.exceptions import Conflict, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.costs.latency import merge
from apps.costs.models import (
    Budget,
    BudgetAlert,
    BudgetRaise,
    BudgetState,
    DirtyHour,
    Granularity,
    Period,
    Price,
    PriceKind,
    RaiseStatus,
    UsageRollup,
)
from apps.costs.periods import hours_between, period_bounds
from apps.logs.models import EventState, LogEvent
from apps.workflows.models import ApprovalRequest, SubjectKind
from apps.workflows.registry import SubjectHandler, subject_kind_register
from apps.workflows.services import approval_request_open

logger = logging.getLogger(__name__)

BUDGET_MANAGERS = frozenset({Role.ADMIN, Role.PRODUCT_OWNER})


# Prices


@transaction.atomic
def price_set(
    *,
    actor: User | None,
    key: str,
    effective_from: datetime,
    kind: str = PriceKind.TOKENS,
    input_per_1k: Decimal = Decimal(0),
    output_per_1k: Decimal = Decimal(0),
    hourly: Decimal = Decimal(0),
    currency: str | None = None,
    source: str = "",
) -> Price:
    """Add a price from `effective_from` on; the price in effect before it ends there. History is kept:
    a price is never edited, so past events keep the cost they were given."""
    if actor is not None and not user_is_admin_anywhere(actor):
        raise PermissionDenied("Only administrators keep the price tables.")
    currency = currency or settings.COSTS_CURRENCY
    if currency != settings.COSTS_CURRENCY:
        raise Unprocessable(f"Prices are in {settings.COSTS_CURRENCY}.", code="invalid_currency")
    if min(input_per_1k, output_per_1k, hourly) < 0:
        raise Unprocessable("Prices cannot be negative.", code="invalid_price")
    if Price.objects.filter(kind=kind, key=key, effective_from__gte=effective_from).exists():
        raise Conflict(
            f"{key} already has a price from {effective_from:%Y-%m-%d %H:%M} or later.", code="price_overlap"
        )
    previous = (
        Price.objects.select_for_update()
        .filter(kind=kind, key=key, effective_from__lt=effective_from)
        .filter(Q(effective_to__isnull=True) | Q(effective_to__gt=effective_from))
        .first()
    )
    if previous is not None:
        previous.effective_to = effective_from
        previous.save(update_fields=["effective_to", "updated_at"])
    price = Price.objects.create(
        kind=kind,
        key=key,
        currency=currency,
        input_per_1k=input_per_1k,
        output_per_1k=output_per_1k,
        hourly=hourly,
        effective_from=effective_from,
        source=source,
        created_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="costs.price_set",
        target=price,
        team=None,
        changes={
            "kind": kind,
            "key": key,
            "input_per_1k": str(input_per_1k),
            "output_per_1k": str(output_per_1k),
            "hourly": str(hourly),
            "currency": currency,
            "effective_from": effective_from.isoformat(),
            "previous_price": previous.pk if previous else None,
        },
    )
    return price


# Rollups


def hours_mark_dirty(pairs: Iterable[tuple[int, datetime]]) -> None:
    """Called when events are stored: their (team, hour) buckets are rebuilt by the next rollup."""
    rows = {(team_id, at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)) for team_id, at in pairs}
    DirtyHour.objects.bulk_create([DirtyHour(team_id=t, hour=h) for t, h in rows], ignore_conflicts=True)


GROUP = ("app", "model", "prompt", "prompt_version")


def _empty_rollup(granularity: str, bucket: datetime, team_id: int, key: tuple) -> UsageRollup:
    return UsageRollup(
        granularity=granularity,
        bucket=bucket,
        team_id=team_id,
        cost=Decimal(0),
        latency={},
        **dict(zip(GROUP, key, strict=True)),
    )


def _rebuild_hour(team_id: int, hour: datetime) -> None:
    end = hour + timedelta(hours=1)
    rows = (
        LogEvent.objects.filter(
            team_id=team_id, state=EventState.STORED, started_at__gte=hour, started_at__lt=end
        )
        .values(*GROUP, "latency_bucket")
        .annotate(
            requests=Count("id"),
            errors=Count("id", filter=~Q(status="ok")),
            pii=Count("id", filter=Q(has_pii=True)),
            unpriced=Count("id", filter=Q(cost__isnull=True)),
            tokens_in=Sum("tokens_in"),
            tokens_out=Sum("tokens_out"),
            cost=Sum("cost"),
        )
        .order_by()
    )
    merged: dict[tuple, UsageRollup] = {}
    for row in rows:
        key = tuple(row[g] for g in GROUP)
        rollup = merged.get(key)
        if rollup is None:
            rollup = merged[key] = _empty_rollup(Granularity.HOUR, hour, team_id, key)
        rollup.requests += row["requests"]
        rollup.errors += row["errors"]
        rollup.pii_requests += row["pii"]
        rollup.unpriced_requests += row["unpriced"]
        rollup.tokens_in += row["tokens_in"] or 0
        rollup.tokens_out += row["tokens_out"] or 0
        rollup.cost += row["cost"] or Decimal(0)
        if row["latency_bucket"] is not None:
            bucket = str(row["latency_bucket"])
            rollup.latency[bucket] = rollup.latency.get(bucket, 0) + row["requests"]
    UsageRollup.objects.filter(granularity=Granularity.HOUR, team_id=team_id, bucket=hour).delete()
    UsageRollup.objects.bulk_create(merged.values())


def _rebuild_day(team_id: int, day: datetime) -> None:
    hours = UsageRollup.objects.filter(
        granularity=Granularity.HOUR, team_id=team_id, bucket__gte=day, bucket__lt=day + timedelta(days=1)
    )
    merged: dict[tuple, UsageRollup] = {}
    for hour in hours:
        key = tuple(getattr(hour, g) for g in GROUP)
        day_row = merged.get(key)
        if day_row is None:
            day_row = merged[key] = _empty_rollup(Granularity.DAY, day, team_id, key)
        for field in (
            "requests",
            "errors",
            "pii_requests",
            "unpriced_requests",
            "tokens_in",
            "tokens_out",
            "cost",
        ):
            setattr(day_row, field, getattr(day_row, field) + getattr(hour, field))
        day_row.latency = {str(k): v for k, v in merge([day_row.latency, hour.latency]).items()}
    UsageRollup.objects.filter(granularity=Granularity.DAY, team_id=team_id, bucket=day).delete()
    UsageRollup.objects.bulk_create(merged.values())


def usage_rollup(*, limit: int = 500) -> int:
    """Beat: rebuild the hours (and their days) where events were stored since the last run. Each hour is
    rebuilt from the stored events, so running twice, or for an hour already rolled up, changes nothing.
    The dirty mark is removed before the hour is read: an event stored meanwhile marks it again."""
    rebuilt = 0
    by_day: dict[tuple[int, datetime], list[DirtyHour]] = {}
    for dirty in DirtyHour.objects.order_by("hour")[:limit]:
        by_day.setdefault((dirty.team_id, dirty.hour.replace(hour=0)), []).append(dirty)
    # The dirty hours of one team and day are rebuilt together and their day once (not once per hour).
    for (team_id, day), marks in by_day.items():
        with transaction.atomic():
            taken = [d.hour for d in marks if DirtyHour.objects.filter(pk=d.pk).delete()[0]]
        if not taken:
            continue  # another worker took them
        with transaction.atomic():
            for hour in taken:
                _rebuild_hour(team_id, hour)
            _rebuild_day(team_id, day)
        rebuilt += len(taken)
    return rebuilt


def usage_recompute(*, since: datetime, until: datetime, team: Team | None = None) -> int:
    """Rebuild every hour of a range (after a price correction, say)."""
    teams = [team.pk] if team else list(Team.objects.values_list("pk", flat=True))
    hours_mark_dirty((t, h) for t in teams for h in hours_between(since, until))
    total = 0
    while DirtyHour.objects.exists():
        done = usage_rollup()
        total += done
        if not done:
            break
    return total


# Budgets


def _require_manager(actor: User, team: Team) -> None:
    if not user_has_role(actor, team.pk, BUDGET_MANAGERS):
        raise PermissionDenied("Only the team's product owners and administrators manage its budgets.")


def _clean_budget(amount: Decimal, thresholds: list[int], period: str) -> list[int]:
    if amount <= 0:
        raise Unprocessable("The amount must be positive.", code="invalid_amount")
    if period not in Period.values:
        raise Unprocessable(f"period: one of {', '.join(Period.values)}.", code="invalid_period")
    clean = sorted(set(thresholds))
    if not clean or any(not 1 <= t <= 1000 for t in clean):
        raise Unprocessable("Thresholds are percentages between 1 and 1000.", code="invalid_thresholds")
    return clean


@transaction.atomic
def budget_create(
    *,
    actor: User,
    team: Team,
    name: str,
    amount: Decimal,
    period: str = Period.MONTH,
    thresholds: list[int] | None = None,
    hard_limit: bool = False,
    app: str = "",
    prompt: str = "",
    recipients: list[str] | None = None,
    webhook_url: str = "",
) -> Budget:
    _require_manager(actor, team)
    clean = _clean_budget(amount, thresholds or [50, 80, 100], period)
    try:
        with transaction.atomic():
            budget = Budget.objects.create(
                team=team,
                name=name,
                amount=amount,
                period=period,
                thresholds=clean,
                hard_limit=hard_limit,
                app=app,
                prompt=prompt,
                recipients=recipients or [],
                webhook_url=webhook_url,
                created_by=actor,
            )
    except IntegrityError:
        raise Conflict(f"{team.slug} already has a budget named {name!r}.", code="budget_exists") from None
    audit_event_record(
        actor=actor,
        action="costs.budget_created",
        target=budget,
        changes={
            "name": name,
            "amount": str(amount),
            "period": period,
            "thresholds": clean,
            "hard_limit": hard_limit,
            "app": app,
            "prompt": prompt,
            "recipients": recipients or [],
            "webhook_url": webhook_url,
        },
    )
    budget_evaluate(budget=budget)
    return budget


@transaction.atomic
def budget_update(*, actor: User, budget: Budget, **changes) -> Budget:
    budget = Budget.objects.select_for_update(of=("self",)).select_related("team").get(pk=budget.pk)
    _require_manager(actor, budget.team)
    allowed = {"amount", "thresholds", "hard_limit", "recipients", "webhook_url", "active", "period"}
    unknown = set(changes) - allowed
    if unknown:
        raise Unprocessable(f"Cannot change {', '.join(sorted(unknown))}.", code="invalid_field")
    before = {k: getattr(budget, k) for k in changes}
    for key, value in changes.items():
        setattr(budget, key, value)
    budget.thresholds = _clean_budget(budget.amount, budget.thresholds, budget.period)
    budget.save()
    audit_event_record(
        actor=actor,
        action="costs.budget_updated",
        target=budget,
        changes={
            "from": {k: str(v) for k, v in before.items()},
            "to": {k: str(getattr(budget, k)) for k in changes},
        },
    )
    budget_evaluate(budget=budget)
    return budget


def budget_spend(*, budget: Budget, start: datetime, end: datetime) -> Decimal:
    rollups = UsageRollup.objects.filter(
        granularity=Granularity.HOUR, team_id=budget.team_id, bucket__gte=start, bucket__lt=end
    )
    if budget.app:
        rollups = rollups.filter(app=budget.app)
    if budget.prompt:
        rollups = rollups.filter(prompt=budget.prompt)
    return rollups.aggregate(total=Sum("cost"))["total"] or Decimal(0)


def budget_limit(*, budget: Budget, period_start: datetime) -> Decimal:
    extra = BudgetRaise.objects.filter(
        budget=budget, period_start=period_start, status=RaiseStatus.APPROVED
    ).aggregate(total=Sum("extra_amount"))["total"]
    return budget.amount + (extra or Decimal(0))


def exhausted_cache_key(team_id: int) -> str:
    return f"costs:exhausted:{team_id}"


@transaction.atomic
def budget_evaluate(*, budget: Budget, now: datetime | None = None) -> BudgetState:
    """Refresh a budget's spend for the current period, fire each threshold crossed (once), and set the
    hard limit. Safe with several workers: the alert row is unique per (budget, period, threshold)."""
    now = now or timezone.now()
    start, end = period_bounds(budget.period, now)
    spend = budget_spend(budget=budget, start=start, end=end)
    limit = budget_limit(budget=budget, period_start=start)
    exhausted = budget.active and budget.hard_limit and spend >= limit
    state, _ = BudgetState.objects.select_for_update().get_or_create(
        budget=budget, period_start=start, defaults={"period_end": end, "limit": limit}
    )
    was_exhausted = state.exhausted
    state.spend, state.limit, state.exhausted, state.period_end = spend, limit, exhausted, end
    state.save()
    if budget.active:
        for threshold in budget.thresholds:
            if spend * 100 >= limit * threshold:
                _fire(budget, start, threshold, spend, limit)
    if exhausted != was_exhausted:
        audit_event_record(
            actor=None,
            action="costs.hard_limit_changed",
            target=budget,
            changes={
                "exhausted": exhausted,
                "spend": str(spend),
                "limit": str(limit),
                "period_start": start.isoformat(),
            },
        )
    transaction.on_commit(lambda: cache.delete(exhausted_cache_key(budget.team_id)))
    return state


def _fire(budget: Budget, start: datetime, threshold: int, spend: Decimal, limit: Decimal) -> None:
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                budget=budget, period_start=start, threshold=threshold, spend=spend, limit=limit
            )
    except IntegrityError:
        return  # already fired in this period
    audit_event_record(
        actor=None,
        action="costs.budget_alert",
        target=budget,
        changes={
            "threshold": threshold,
            "spend": str(spend),
            "limit": str(limit),
            "period_start": start.isoformat(),
        },
    )
    from workers.costs import notify_alert

    enqueue_on_commit(notify_alert, alert.pk)


def budgets_evaluate_all(*, now: datetime | None = None) -> int:
    count = 0
    for budget in Budget.objects.filter(active=True).select_related("team"):
        budget_evaluate(budget=budget, now=now)
        count += 1
    return count


def budget_alert_notify(*, alert_id: int) -> bool:
    """E-mail the recipients and call the webhook of an alert, once."""
    import json
    import urllib.request

    from django.core.mail import send_mail

    with transaction.atomic():
        alert = (
            BudgetAlert.objects.select_for_update(of=("self",))
            .select_related("budget__team")
            .filter(pk=alert_id)
            .first()
        )
        if alert is None or alert.notified_at is not None:
            return False
        budget = alert.budget
        subject = f"[Atalaya] {budget.team.slug}/{budget.name}: {alert.threshold}% of the budget reached"
        body = (
            f"Spend {alert.spend:.2f} {settings.COSTS_CURRENCY} of {alert.limit:.2f} "
            f"({alert.threshold}% threshold) for the period from {alert.period_start:%Y-%m-%d}."
        )
        error = ""
        if budget.recipients:
            send_mail(subject=subject, message=body, from_email=None, recipient_list=budget.recipients)
        if budget.webhook_url:
            request = urllib.request.Request(  # noqa: S310 - an https URL set by the team's managers
                budget.webhook_url,
                data=json.dumps({"text": f"{subject}\n{body}"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=10):  # noqa: S310 # nosec B310 # https only: the form and the API refuse other schemes
                    pass
            except OSError as exc:
                error = f"webhook: {exc}"[:300]
        alert.notified_at = timezone.now()
        alert.notify_error = error
        alert.save(update_fields=["notified_at", "notify_error"])
    return True


@dataclass(frozen=True)
class ExhaustedBudget:
    name: str
    amount: str
    spend: str
    period_end: str
    app: str
    prompt: str


def exhausted_budgets(*, team_id: int) -> list[ExhaustedBudget]:
    """The team's hard budgets spent in their current period (cached a few seconds: read on every resolve)."""
    key = exhausted_cache_key(team_id)
    cached = cache.get(key)
    if cached is not None:
        return cached
    now = timezone.now()
    states = BudgetState.objects.filter(
        budget__team_id=team_id,
        budget__active=True,
        exhausted=True,
        period_start__lte=now,
        period_end__gt=now,
    ).select_related("budget")
    result = [
        ExhaustedBudget(
            name=s.budget.name,
            amount=str(s.limit),
            spend=str(s.spend),
            period_end=s.period_end.isoformat(),
            app=s.budget.app,
            prompt=s.budget.prompt,
        )
        for s in states
    ]
    cache.set(key, result, settings.BUDGET_STATE_CACHE_SECONDS)
    return result


# Budget raises (through the approval engine)


@transaction.atomic
def budget_raise_request(
    *, actor: User, budget: Budget, extra_amount: Decimal, reason: str
) -> ApprovalRequest:
    budget = Budget.objects.select_related("team").get(pk=budget.pk)
    _require_manager(actor, budget.team)
    if extra_amount <= 0:
        raise Unprocessable("The raise must be positive.", code="invalid_amount")
    if not reason.strip():
        raise Unprocessable("Say why the budget must be raised.", code="invalid_reason")
    start, _ = period_bounds(budget.period, timezone.now())
    raise_ = BudgetRaise.objects.create(
        budget=budget,
        period_start=start,
        extra_amount=extra_amount,
        reason=reason.strip()[:500],
        requested_by=actor,
    )
    audit_event_record(
        actor=actor,
        action="costs.raise_requested",
        target=raise_,
        team=budget.team,
        changes={
            "extra_amount": str(extra_amount),
            "reason": raise_.reason,
            "period_start": start.isoformat(),
        },
    )
    return approval_request_open(
        subject=raise_,
        subject_kind=SubjectKind.BUDGET_RAISE,
        team=budget.team,
        requested_by=actor,
        summary=f"{budget} +{extra_amount} this period",
    )


_RAISE_OUTCOME = {
    "approved": RaiseStatus.APPROVED,
    "rejected": RaiseStatus.REJECTED,
    "changes_requested": RaiseStatus.CHANGES_REQUESTED,
    "withdrawn": RaiseStatus.WITHDRAWN,
}


def _raise_close(*, subject: BudgetRaise, request: ApprovalRequest, actor: User, comment: str) -> None:
    subject.status = _RAISE_OUTCOME[request.status]
    subject.save(update_fields=["status", "updated_at"])
    audit_event_record(
        actor=actor,
        action="costs.raise_decided",
        target=subject,
        team=request.team,
        changes={"status": subject.status, "approval_request": request.pk, "comment": comment},
    )
    if subject.status == RaiseStatus.APPROVED:
        budget_evaluate(budget=subject.budget)


def register_subjects() -> None:
    subject_kind_register(
        SubjectKind.BUDGET_RAISE,
        SubjectHandler(
            model=BudgetRaise,
            on_approved=_raise_close,
            on_rejected=_raise_close,
            on_changes_requested=_raise_close,
            on_withdrawn=_raise_close,
        ),
    )
