"""Forms of the costs pages: the dashboard's filters, budgets, a budget raise and a new price."""

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import Team
from apps.costs.models import Period, PriceKind
from apps.costs.selectors import CostFilters

RANGE_CHOICES = [
    ("month", _("This month")),
    ("7d", _("Last 7 days")),
    ("30d", _("Last 30 days")),
    ("90d", _("Last 90 days")),
    ("last_month", _("Last month")),
    ("custom", _("Custom dates")),
]
DEFAULT_RANGE = "month"
MAX_DAYS = 400


def _month_start(day: date) -> date:
    return day.replace(day=1)


@dataclass(frozen=True)
class Window:
    """The dates a dashboard shows: [first, last] whole days in the console's time zone."""

    first: date
    last: date
    preset: str

    @property
    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


def window_for(preset: str, since: date | None, until: date | None, today: date) -> Window:
    if preset == "custom" and since and until:
        return Window(since, until, preset)
    if preset == "custom" and since:
        return Window(since, max(since, today), preset)
    if preset == "7d":
        return Window(today - timedelta(days=6), today, preset)
    if preset == "30d":
        return Window(today - timedelta(days=29), today, preset)
    if preset == "90d":
        return Window(today - timedelta(days=89), today, preset)
    if preset == "last_month":
        this_month = _month_start(today)
        return Window(_month_start(this_month - timedelta(days=1)), this_month - timedelta(days=1), preset)
    return Window(_month_start(today), today, "month")


class CostFilterForm(forms.Form):
    """The dashboard's filters. An invalid filter is shown with its error and left out."""

    team = forms.MultipleChoiceField(
        label=_("Teams"), required=False, widget=forms.CheckboxSelectMultiple, help_text=_("All when none.")
    )
    app = forms.ChoiceField(label=_("App"), required=False)
    model = forms.ChoiceField(label=_("Model"), required=False)
    prompt = forms.ChoiceField(label=_("Prompt"), required=False)
    range = forms.ChoiceField(label=_("Period"), required=False, choices=RANGE_CHOICES)
    since = forms.DateField(
        label=_("From"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date", "data-custom-date": ""}),
    )
    until = forms.DateField(
        label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date", "data-custom-date": ""})
    )

    def __init__(
        self, *args: Any, teams: list[Team], values: dict[str, list[str]], today: date, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.today = today
        self.teams = {t.slug: t for t in teams}
        self.fields["team"].choices = [(t.slug, t.name or t.slug) for t in teams]
        self.set_values(values)

    def set_values(self, values: dict[str, list[str]]) -> None:
        """The apps, models and prompts offered (those with usage), keeping a chosen one without usage."""
        for name, empty in (("app", _("All apps")), ("model", _("All models")), ("prompt", _("All prompts"))):
            known = set(values.get(f"{name}s", []))
            current = self.data.get(name) if self.is_bound else None
            if current:
                known.add(str(current))
            self.fields[name].choices = [("", empty), *((v, v) for v in sorted(known))]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if cleaned.get("range") == "custom" and not since:
            self.add_error("since", _("Choose the first day of the custom period."))
        if since and until and until < since:
            self.add_error("until", _("The end date is before the start date."))
        elif since and until and (until - since).days >= MAX_DAYS:
            self.add_error("until", _("Choose at most %(days)s days.") % {"days": MAX_DAYS})
        return cleaned

    def window(self) -> Window:
        data = self._valid_data()
        return window_for(
            data.get("range") or DEFAULT_RANGE, data.get("since"), data.get("until"), self.today
        )

    def filters(self) -> CostFilters:
        """The valid filters as the selectors take them; dates are whole days in the current time zone."""
        data = self._valid_data()
        window = self.window()
        zone = timezone.get_current_timezone()
        teams = [self.teams[s] for s in data.get("team") or [] if s in self.teams]
        # Rollup buckets are UTC hours and days: the selectors take UTC bounds (as the API passes them).
        return CostFilters(
            since=datetime.combine(window.first, time.min, tzinfo=zone).astimezone(UTC),
            until=datetime.combine(window.last + timedelta(days=1), time.min, tzinfo=zone).astimezone(UTC),
            team_ids=tuple(t.pk for t in teams),
            app=data.get("app") or "",
            model=data.get("model") or "",
            prompt=data.get("prompt") or "",
        )

    def _valid_data(self) -> dict[str, Any]:
        if not self.is_bound:
            return {}
        self.is_valid()
        return {k: v for k, v in self.cleaned_data.items() if k not in self.errors}


def split_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.replace("\n", ",").split(",") if item.strip()]


class BudgetForm(forms.Form):
    """A budget. Team, name, app and prompt are set when it is created; the rest can be edited."""

    team = forms.ModelChoiceField(
        label=_("Team"), queryset=Team.objects.none(), empty_label=None, to_field_name="slug"
    )
    name = forms.CharField(
        label=_("Name"), max_length=100, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    amount = forms.DecimalField(
        label=_("Amount"),
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    period = forms.ChoiceField(label=_("Period"), choices=Period.choices, initial=Period.MONTH)
    thresholds = forms.CharField(
        label=_("Alert thresholds (%)"),
        initial="50, 80, 100",
        max_length=200,
        help_text=_("Percentages of the amount, separated by commas; each alerts once per period."),
    )
    hard_limit = forms.BooleanField(
        label=_("Hard limit: stop the team's applications when the amount is spent"),
        required=False,
        help_text=_(
            "Prompt resolution answers 429 budget_exhausted until the period ends or a raise is approved."
        ),
    )
    app = forms.CharField(
        label=_("Only this app"), required=False, max_length=100, help_text=_("Empty: the whole team.")
    )
    prompt = forms.CharField(
        label=_("Only this prompt"), required=False, max_length=100, help_text=_("Empty: every prompt.")
    )
    recipients = forms.CharField(
        label=_("E-mail recipients"),
        required=False,
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Separated by commas or new lines."),
    )
    webhook_url = forms.URLField(
        label=_("Webhook URL"),
        required=False,
        assume_scheme="https",
        help_text=_("A chat incoming-webhook URL, called with the alert's text."),
    )
    active = forms.BooleanField(label=_("Active"), required=False, initial=True)

    CREATE_ONLY = ("team", "name", "app", "prompt")

    def __init__(self, *args: Any, teams: Any = None, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["amount"].label = _("Amount (%(currency)s)") % {"currency": settings.COSTS_CURRENCY}
        if editing:
            for name in self.CREATE_ONLY:
                del self.fields[name]
        else:
            del self.fields["active"]
            self.fields["team"].queryset = teams

    def clean_thresholds(self) -> list[int]:
        raw = self.cleaned_data["thresholds"]
        try:
            values = [int(part) for part in split_list(raw)]
        except ValueError:
            raise ValidationError(_("Whole numbers separated by commas, e.g. 50, 80, 100.")) from None
        if not values or any(not 1 <= v <= 1000 for v in values):
            raise ValidationError(_("Each threshold is a percentage between 1 and 1000."))
        return sorted(set(values))

    def clean_webhook_url(self) -> str:
        url = self.cleaned_data["webhook_url"]
        if url and not url.lower().startswith("https://"):
            raise ValidationError(_("Only https:// URLs: the alert's text goes to it."))
        return url

    def clean_recipients(self) -> list[str]:
        recipients = split_list(self.cleaned_data["recipients"])
        for address in recipients:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError(_("%(value)s is not an e-mail address.") % {"value": address}) from None
        return recipients


def budget_initial(budget: Any) -> dict[str, Any]:
    return {
        "amount": budget.amount,
        "period": budget.period,
        "thresholds": ", ".join(str(t) for t in budget.thresholds),
        "hard_limit": budget.hard_limit,
        "recipients": "\n".join(budget.recipients),
        "webhook_url": budget.webhook_url,
        "active": budget.active,
    }


class BudgetRaiseForm(forms.Form):
    extra_amount = forms.DecimalField(
        label=_("Extra amount"),
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
        help_text=_("Added to the limit for the current period only, once approved."),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Reviewers read this to decide."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        label = _("Extra amount (%(currency)s)") % {"currency": settings.COSTS_CURRENCY}
        self.fields["extra_amount"].label = label


class PriceForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind"), choices=PriceKind.choices, initial=PriceKind.TOKENS)
    key = forms.CharField(
        label=_("Model, endpoint or accelerator"),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false", "list": "price-keys"}),
        help_text=_("For tokens, the model name exactly as applications log it."),
    )
    input_per_1k = forms.DecimalField(
        label=_("Input, per 1k tokens"),
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=8,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    output_per_1k = forms.DecimalField(
        label=_("Output, per 1k tokens"),
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=8,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    hourly = forms.DecimalField(
        label=_("Per hour"),
        required=False,
        min_value=0,
        max_digits=14,
        decimal_places=6,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
        help_text=_("For endpoints and accelerators."),
    )
    effective_from = forms.DateTimeField(
        label=_("Effective from"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        help_text=_("The price in effect before it ends at this time. Past events keep their cost."),
    )
    source = forms.CharField(
        label=_("Source"), required=False, max_length=300, help_text=_("Where the price comes from.")
    )

    def clean(self) -> dict[str, Any]:
        """Tokens need both token prices, hourly kinds the hourly price (zero is a price; empty is not)."""
        cleaned = super().clean()
        kind = cleaned.get("kind")
        needed = ("input_per_1k", "output_per_1k") if kind == PriceKind.TOKENS else ("hourly",)
        for name in ("input_per_1k", "output_per_1k", "hourly"):
            if cleaned.get(name) is None and name not in self.errors:
                if kind and name in needed:
                    self.add_error(name, _("Give this price (0 for free)."))
                else:
                    cleaned[name] = Decimal(0)
        return cleaned
