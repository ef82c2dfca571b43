"""Prices, usage rollups and budgets."""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.common.models import BaseModel


class PriceKind(models.TextChoices):
    TOKENS = "tokens", _("Tokens (per 1k input and output)")
    ENDPOINT_HOUR = "endpoint_hour", _("Endpoint (per hour)")
    ACCELERATOR_HOUR = "accelerator_hour", _("Accelerator (per hour)")


class Price(BaseModel):
    """An effective-dated price. For tokens, `key` is the model (or adapter or endpoint) name as logged;
    for hourly prices, the endpoint or accelerator type. The row in effect at a time t is the one with
    effective_from ≤ t < effective_to (open-ended when effective_to is empty)."""

    kind = models.CharField(max_length=20, choices=PriceKind.choices, default=PriceKind.TOKENS)
    key = models.CharField(max_length=200, db_index=True)
    currency = models.CharField(max_length=3, default="USD")
    input_per_1k = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    output_per_1k = models.DecimalField(max_digits=14, decimal_places=8, default=Decimal(0))
    hourly = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal(0))
    effective_from = models.DateTimeField()
    effective_to = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=300, blank=True, help_text=_("Where the price comes from."))
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        ordering = ["kind", "key", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "key", "effective_from"], name="price_unique_start"),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=models.F("effective_from")),
                name="price_range_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} from {self.effective_from:%Y-%m-%d}"


class Granularity(models.TextChoices):
    HOUR = "hour", _("Hour")
    DAY = "day", _("Day")


class UsageRollup(models.Model):
    """Usage per hour or day and per (team, app, model, prompt, version). Rebuilt, never patched: a bucket
    is recomputed from the stored events, so re-running a rollup changes nothing."""

    granularity = models.CharField(max_length=4, choices=Granularity.choices)
    bucket = models.DateTimeField()
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    app = models.CharField(max_length=100, blank=True)
    model = models.CharField(max_length=200)
    prompt = models.CharField(max_length=100, blank=True)
    prompt_version = models.PositiveIntegerField(null=True, blank=True)
    requests = models.PositiveBigIntegerField(default=0)
    errors = models.PositiveBigIntegerField(default=0)
    pii_requests = models.PositiveBigIntegerField(default=0)
    unpriced_requests = models.PositiveBigIntegerField(default=0)
    tokens_in = models.PositiveBigIntegerField(default=0)
    tokens_out = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    latency = models.JSONField(
        default=dict, help_text="Mergeable histogram {bucket: count} (apps.costs.latency)."
    )

    class Meta:
        indexes = [
            models.Index(fields=["granularity", "team", "bucket"]),
            models.Index(fields=["granularity", "bucket"]),
        ]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M} {self.team_id} {self.model}"


class DirtyHour(models.Model):
    """An hour of a team whose rollup must be rebuilt (events were stored in it since the last run)."""

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "hour"], name="dirty_hour_unique")]

    def __str__(self) -> str:
        return f"{self.team_id} {self.hour:%Y-%m-%d %H}"


class Period(models.TextChoices):
    DAY = "day", _("Day")
    WEEK = "week", _("Week")
    MONTH = "month", _("Month")


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(BaseModel):
    team = models.ForeignKey(Team, on_delete=models.PROTECT, related_name="budgets")
    name = models.CharField(max_length=100)
    app = models.CharField(max_length=100, blank=True, help_text=_("Only this app's spend (optional)."))
    prompt = models.CharField(max_length=100, blank=True, help_text=_("Only this prompt's spend (optional)."))
    period = models.CharField(max_length=5, choices=Period.choices, default=Period.MONTH)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    thresholds = models.JSONField(default=default_thresholds)
    hard_limit = models.BooleanField(default=False)
    recipients = models.JSONField(default=list, blank=True)
    webhook_url = models.URLField(blank=True)
    active = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["team__slug", "name"]
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="budget_unique_name")]

    def __str__(self) -> str:
        return f"{self.team.slug}/{self.name}"


class BudgetState(models.Model):
    """The spend of a budget in one period, refreshed by beat; `exhausted` is what the hard limit reads."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="states")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    spend = models.DecimalField(max_digits=20, decimal_places=8, default=Decimal(0))
    limit = models.DecimalField(max_digits=14, decimal_places=2)
    exhausted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["budget", "period_start"], name="budget_state_unique")]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.period_start:%Y-%m-%d}: {self.spend}/{self.limit}"


class BudgetAlert(models.Model):
    """A threshold crossed in a period. Unique per (budget, period, threshold): it fires once, whatever
    how many workers evaluate the budget at the same time."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period_start = models.DateTimeField()
    threshold = models.PositiveSmallIntegerField()
    spend = models.DecimalField(max_digits=20, decimal_places=8)
    limit = models.DecimalField(max_digits=14, decimal_places=2)
    fired_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    notify_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-fired_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["budget", "period_start", "threshold"], name="alert_once_per_threshold"
            )
        ]

    def __str__(self) -> str:
        return f"{self.budget_id} {self.threshold}% {self.period_start:%Y-%m-%d}"


class RaiseStatus(models.TextChoices):
    PENDING = "pending", _("Pending approval")
    APPROVED = "approved", _("Approved")
    REJECTED = "rejected", _("Rejected")
    CHANGES_REQUESTED = "changes_requested", _("Changes requested")
    WITHDRAWN = "withdrawn", _("Withdrawn")


class BudgetRaise(BaseModel):
    """A temporary raise of a budget for one period: the subject of an approval request."""

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="raises")
    period_start = models.DateTimeField()
    extra_amount = models.DecimalField(max_digits=14, decimal_places=2)
    reason = models.CharField(max_length=500)
    status = models.CharField(max_length=20, choices=RaiseStatus.choices, default=RaiseStatus.PENDING)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.budget} +{self.extra_amount}"

    @property
    def team(self) -> Team:
        return self.budget.team
