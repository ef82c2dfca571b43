"""Costs pages: the dashboard (KPIs, charts with their data and CSV, a KPI summary per team), budgets
(their state, alerts, raises through the approval engine) and the price tables.

Every figure comes from the usage rollups through apps.costs.selectors (the same reads as
GET /api/v1/costs/summary); the dashboard reads the rollups once, whatever how many charts it shows.
Figures are built here as plain Plotly JSON and drawn by static/js/atalaya-charts.js."""

import csv
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from apps.accounts.models import Team
from apps.accounts.selectors import team_list, user_has_role, user_is_admin_anywhere
from apps.common.exceptions import ApplicationError
from apps.common.views import raise_for_http, render_page_or_fragment
from apps.costs.forms import (
    BudgetForm,
    BudgetRaiseForm,
    CostFilterForm,
    PriceForm,
    Window,
    budget_initial,
)
from apps.costs.models import Budget, Period, Price, PriceKind
from apps.costs.selectors import (
    COST_READERS,
    CostFilters,
    budget_alert_list,
    budget_get,
    budget_list,
    budget_raise_list,
    budgets_current,
    cost_filter_values,
    costs_breakdown,
    costs_can_read,
    price_list,
)
from apps.costs.services import BUDGET_MANAGERS, budget_create, budget_raise_request, budget_update, price_set
from apps.feedback.selectors import feedback_kpis

# Colours of the charts (the console's palette, distinguishable for the common colour-vision deficiencies).
ACCENT = "#1d4ed8"
ORANGE = "#d97706"
TEAL = "#0f766e"
RED = "#b42318"
GREY = "#5a6474"
PURPLE = "#7c3aed"
MONEY_TICKS = ",.4~f"  # 0.0006, not Plotly's SI "600µ"
DAY_MS = 86_400_000


def _cost_teams(request: HttpRequest) -> list[Team]:
    teams = list(team_list(user=request.user, roles=COST_READERS))
    if not teams:
        raise PermissionDenied(_("Your roles do not show the costs of any team."))
    return teams


# Charts: each is its data (the table and the CSV) and a Plotly figure of the same data.


@dataclass
class Column:
    key: str  # the CSV header
    label: str  # the table header
    kind: str = "text"  # text | date | money | amount | int | rate | ms


@dataclass
class Chart:
    key: str
    title: str
    summary: str  # what the chart shows, for screen readers
    columns: list[Column]
    rows: list[list[Any]]
    figure: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def figure_id(self) -> str:
        return f"chart-{self.key}-figure"

    @property
    def table(self) -> list[list[tuple[Any, str]]]:
        """The rows with each cell's kind, for the data table under the chart."""
        kinds = [c.kind for c in self.columns]
        return [list(zip(row, kinds, strict=True)) for row in self.rows]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _layout(
    y_title: str, *, y_format: str = "", percent: bool = False, days: int | None = None, **extra: Any
) -> dict[str, Any]:
    spanish = (get_language() or "en").startswith("es")
    layout: dict[str, Any] = {
        "margin": {"l": 64, "r": 16, "t": 8, "b": 48},
        "height": 300,
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", "size": 12},
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.2},
        "separators": ",." if spanish else ".,",
        "yaxis": {
            "title": {"text": y_title},
            "rangemode": "tozero",
            "gridcolor": "#e5e8ee",
            "zerolinecolor": "#b9c1cd",
            "tickformat": ".1~%" if percent else y_format,
            "automargin": True,
        },
        "xaxis": {"type": "date", "tickformat": "%d/%m" if spanish else "%b %-d", "gridcolor": "#eef0f4"},
    }
    if days is not None and days <= 14:
        layout["xaxis"]["dtick"] = DAY_MS  # one tick a day, never a day twice
    layout.update(extra)
    return layout


def _bar_layout(x_title: str) -> dict[str, Any]:
    layout = _layout("", hovermode="closest", showlegend=False)
    layout["xaxis"] = {
        "title": {"text": x_title},
        "rangemode": "tozero",
        "gridcolor": "#e5e8ee",
        "automargin": True,
    }
    layout["yaxis"] = {"type": "category", "autorange": "reversed", "automargin": True}
    layout["margin"] = {"l": 16, "r": 16, "t": 8, "b": 48}
    return layout


@dataclass
class Dashboard:
    """The figures of one filtered view: totals, per day (every day of the window), per group."""

    window: Window
    filters: CostFilters
    totals: dict[str, Any]
    days: list[dict[str, Any]]
    groups: dict[str, list[dict[str, Any]]]
    budget: dict[str, Any] | None  # the monthly, team-wide budgets of the teams shown, summed
    forecast: Decimal | None  # month-end spend at the current run rate (this month only)
    today: date


def _empty_day(day: date) -> dict[str, Any]:
    return {
        "key": day.isoformat(),
        "spend": Decimal(0),
        "requests": 0,
        "errors": 0,
        "error_rate": None,
        "tokens_in": 0,
        "tokens_out": 0,
        "cost_per_1k_tokens": None,
        "unpriced_requests": 0,
        "pii_rate": None,
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "latency_p99_ms": None,
    }


def _month_forecast(window: Window, days: list[dict[str, Any]], today: date) -> Decimal | None:
    """The month-end spend at this month's run rate, when the window is this month up to today."""
    month_start = today.replace(day=1)
    if window.first != month_start or window.last != today:
        return None
    zone = timezone.get_current_timezone()
    start = datetime.combine(month_start, time.min, tzinfo=zone)
    end = datetime.combine((month_start + timedelta(days=32)).replace(day=1), time.min, tzinfo=zone)
    spent = sum((d["spend"] for d in days), Decimal(0))
    elapsed = max((timezone.now() - start).total_seconds(), 1.0)
    return spent * Decimal((end - start).total_seconds() / elapsed)


def _budget_summary(budgets: list[Budget], current: dict[int, dict[str, Any]]) -> dict[str, Any] | None:
    monthly = [b for b in budgets if b.active and b.period == Period.MONTH and not b.app and not b.prompt]
    if not monthly:
        return None
    spend = sum((current[b.pk]["spend"] for b in monthly), Decimal(0))
    limit = sum((current[b.pk]["limit"] for b in monthly), Decimal(0))
    return {
        "budgets": monthly,
        "spend": spend,
        "limit": limit,
        "percent": float(spend * 100 / limit) if limit else None,
        "forecast": sum((current[b.pk]["forecast"] for b in monthly), Decimal(0)),
        "exhausted": any(current[b.pk]["exhausted"] for b in monthly),
        "hard": any(b.hard_limit for b in monthly),
        "period_end": max(current[b.pk]["period_end"] for b in monthly),
    }


def _dashboard(
    request: HttpRequest, form: CostFilterForm, group_bys: tuple[str, ...], *, with_budgets: bool = True
) -> tuple[Dashboard, list[Budget], dict[int, dict[str, Any]]]:
    filters = form.filters()
    window = form.window()
    breakdown = costs_breakdown(user=request.user, filters=filters, group_bys=("day", *group_bys))
    by_day = {row["key"]: row for row in breakdown["groups"]["day"]}
    days = [by_day.get(d.isoformat()) or _empty_day(d) for d in window.days]
    budgets: list[Budget] = []
    current: dict[int, dict[str, Any]] = {}
    if with_budgets:
        budgets = list(budget_list(user=request.user).filter(active=True))
        if filters.team_ids:
            budgets = [b for b in budgets if b.team_id in filters.team_ids]
        current = budgets_current(budgets=budgets)
    dashboard = Dashboard(
        window=window,
        filters=filters,
        totals=breakdown["totals"],
        days=days,
        groups=breakdown["groups"],
        budget=_budget_summary(budgets, current),
        forecast=_month_forecast(window, days, form.today),
        today=form.today,
    )
    return dashboard, budgets, current


def _x(days: list[dict[str, Any]]) -> list[str]:
    return [d["key"] for d in days]


def _spend_chart(d: Dashboard) -> Chart:
    cumulative: list[Decimal] = []
    total = Decimal(0)
    for day in d.days:
        total += day["spend"]
        cumulative.append(total)
    limit = d.budget["limit"] if d.budget else None
    rows = [
        [day["key"], day["spend"], cum, limit, d.forecast]
        for day, cum in zip(d.days, cumulative, strict=True)
    ]
    x = _x(d.days)
    data: list[dict[str, Any]] = [
        {
            "type": "bar",
            "name": _("Daily spend"),
            "x": x,
            "y": [_float(day["spend"]) for day in d.days],
            "marker": {"color": ACCENT},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "name": _("Cumulative spend"),
            "x": x,
            "y": [_float(c) for c in cumulative],
            "line": {"color": TEAL, "width": 2},
        },
    ]
    layout = _layout(
        _("Spend (%(currency)s)") % {"currency": _currency()}, y_format=MONEY_TICKS, days=len(d.days)
    )
    month_end = (d.window.first.replace(day=1) + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    if d.forecast is not None:
        data.append(
            {
                "type": "scatter",
                "mode": "lines+markers",
                "name": _("Month-end forecast"),
                "x": [d.today.isoformat(), month_end.isoformat()],
                "y": [_float(total), _float(d.forecast)],
                "line": {"color": ORANGE, "dash": "dot", "width": 2},
            }
        )
        layout["xaxis"]["range"] = [
            (d.window.first - timedelta(hours=12)).isoformat(),
            (month_end + timedelta(days=1)).isoformat(),
        ]
    if limit is not None:
        end = month_end if d.forecast is not None else d.window.last
        data.append(
            {
                "type": "scatter",
                "mode": "lines",
                "name": _("Monthly budget"),
                "x": [d.window.first.isoformat(), end.isoformat()],
                "y": [_float(limit), _float(limit)],
                "line": {"color": RED, "dash": "dash", "width": 2},
            }
        )
    summary = _("Spend per day from %(first)s to %(last)s: %(total)s %(currency)s in total.") % {
        "first": date_format(d.window.first),
        "last": date_format(d.window.last),
        "total": f"{total:.2f}",
        "currency": _currency(),
    }
    return Chart(
        key="spend",
        title=_("Spend over time"),
        summary=summary,
        columns=[
            Column("day", _("Day"), "date"),
            Column("spend", _("Spend"), "money"),
            Column("cumulative_spend", _("Cumulative spend"), "money"),
            Column("monthly_budget", _("Monthly budget"), "money"),
            Column("month_end_forecast", _("Month-end forecast"), "money"),
        ],
        rows=rows,
        figure={"data": data, "layout": layout},
        note=_("The budget line is the sum of the monthly team-wide budgets of the teams shown.")
        if limit is not None
        else "",
    )


def _group_chart(d: Dashboard, group_by: str, key: str, title: str, label: str, empty: str) -> Chart:
    groups = d.groups[group_by]
    names = [str(g["key"]) if g["key"] not in ("", None) else empty for g in groups]
    rows = [
        [name, g["spend"], g["requests"], g["tokens_in"] + g["tokens_out"], g["unpriced_requests"]]
        for name, g in zip(names, groups, strict=True)
    ]
    top = groups[:15]
    figure = {
        "data": [
            {
                "type": "bar",
                "orientation": "h",
                "name": _("Spend"),
                "x": [_float(g["spend"]) for g in top],
                "y": names[: len(top)],
                "marker": {"color": [ORANGE if g["unpriced_requests"] else ACCENT for g in top]},
                "hovertemplate": "%{y}: %{x}<extra></extra>",
            }
        ],
        "layout": _bar_layout(_("Spend (%(currency)s)") % {"currency": _currency()}),
    }
    figure["layout"]["height"] = max(200, 60 + 28 * len(top))
    summary = _("%(title)s: %(count)s groups; the largest is %(name)s.") % {
        "title": title,
        "count": len(groups),
        "name": names[0] if names else "—",
    }
    unpriced = any(g["unpriced_requests"] for g in groups)
    return Chart(
        key=key,
        title=title,
        summary=summary,
        columns=[
            Column(group_by, label),
            Column("spend", _("Spend"), "money"),
            Column("requests", _("Requests"), "int"),
            Column("tokens", _("Tokens"), "int"),
            Column("unpriced_requests", _("Unpriced requests"), "int"),
        ],
        rows=rows,
        figure=figure,
        note=_("Orange bars include unpriced requests: their cost is not counted.") if unpriced else "",
    )


def _line(
    name: str, days: list[dict[str, Any]], values: list[Any], color: str, **extra: Any
) -> dict[str, Any]:
    trace = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": name,
        "x": _x(days),
        "y": [_float(v) for v in values],
        "line": {"color": color, "width": 2},
        "marker": {"size": 5},
        "connectgaps": False,
    }
    trace.update(extra)
    return trace


def _series_chart(
    d: Dashboard,
    key: str,
    title: str,
    y_title: str,
    series: list[tuple[str, str, str, str]],  # (field, label, kind, colour)
    *,
    chart_type: str = "line",
    percent: bool = False,
    y_format: str = "",
) -> Chart:
    traces = []
    for name, label, _kind, color in series:
        values = [day[name] for day in d.days]
        if chart_type == "bar":
            traces.append(
                {
                    "type": "bar",
                    "name": label,
                    "x": _x(d.days),
                    "y": [_float(v) for v in values],
                    "marker": {"color": color},
                }
            )
        else:
            traces.append(_line(label, d.days, values, color))
    layout = _layout(y_title, percent=percent, y_format=y_format, days=len(d.days), barmode="stack")
    return Chart(
        key=key,
        title=title,
        summary=_("%(title)s per day from %(first)s to %(last)s.")
        % {"title": title, "first": date_format(d.window.first), "last": date_format(d.window.last)},
        columns=[Column("day", _("Day"), "date"), *(Column(n, label, kind) for n, label, kind, _c in series)],
        rows=[[day["key"], *(day[n] for n, *_rest in series)] for day in d.days],
        figure={"data": traces, "layout": layout},
    )


def _currency() -> str:
    from django.conf import settings

    return settings.COSTS_CURRENCY


CHARTS: dict[str, tuple[tuple[str, ...], Callable[[Dashboard], Chart]]] = {
    "spend": ((), _spend_chart),
    "by-model": (
        ("model",),
        lambda d: _group_chart(d, "model", "by-model", _("Spend by model"), _("Model"), "—"),
    ),
    "by-team": (
        ("team",),
        lambda d: _group_chart(d, "team", "by-team", _("Spend by team"), _("Team"), "—"),
    ),
    "by-prompt": (
        ("prompt",),
        lambda d: _group_chart(d, "prompt", "by-prompt", _("Spend by prompt"), _("Prompt"), _("(no prompt)")),
    ),
    "cost-per-1k": (
        (),
        lambda d: _series_chart(
            d,
            "cost-per-1k",
            _("Cost per 1k tokens"),
            _("%(currency)s per 1k tokens") % {"currency": _currency()},
            [("cost_per_1k_tokens", _("Cost per 1k tokens"), "amount", ACCENT)],
            y_format=MONEY_TICKS,
        ),
    ),
    "tokens": (
        (),
        lambda d: _series_chart(
            d,
            "tokens",
            _("Tokens"),
            _("Tokens"),
            [
                ("tokens_in", _("Input tokens"), "int", ACCENT),
                ("tokens_out", _("Output tokens"), "int", ORANGE),
            ],
            chart_type="bar",
        ),
    ),
    "requests": (
        (),
        lambda d: _series_chart(
            d,
            "requests",
            _("Requests"),
            _("Requests"),
            [
                ("requests", _("Requests"), "int", ACCENT),
                ("errors", _("Errors"), "int", RED),
                ("unpriced_requests", _("Unpriced requests"), "int", ORANGE),
            ],
        ),
    ),
    "error-rate": (
        (),
        lambda d: _series_chart(
            d,
            "error-rate",
            _("Error rate"),
            _("Error rate"),
            [("error_rate", _("Error rate"), "rate", RED)],
            percent=True,
        ),
    ),
    "latency": (
        (),
        lambda d: _series_chart(
            d,
            "latency",
            _("Latency p50 and p95"),
            _("Milliseconds"),
            [
                ("latency_p50_ms", _("p50 latency"), "ms", ACCENT),
                ("latency_p95_ms", _("p95 latency"), "ms", ORANGE),
            ],
        ),
    ),
    "pii-rate": (
        (),
        lambda d: _series_chart(
            d,
            "pii-rate",
            _("Requests with personal data"),
            _("Share of requests"),
            [("pii_rate", _("PII rate"), "rate", PURPLE)],
            percent=True,
        ),
    ),
}


def _filter_form(request: HttpRequest, teams: list[Team]) -> CostFilterForm:
    form = CostFilterForm(request.GET or None, teams=teams, values={}, today=timezone.localdate())
    form.set_values(cost_filter_values(user=request.user, filters=form.filters()))
    return form


def _team_rows(
    d: Dashboard, teams: list[Team], budgets: list[Budget], current: dict[int, dict[str, Any]]
) -> list[dict[str, Any]]:
    """The KPI summary per team: quality, operation and business figures of the filtered range."""
    by_slug = {g["key"]: g for g in d.groups.get("team", [])}
    shown = [t for t in teams if not d.filters.team_ids or t.pk in d.filters.team_ids]
    rows = []
    for team in shown:
        figures = by_slug.get(team.slug)
        team_budgets = [
            {"budget": b, **current[b.pk]}
            for b in budgets
            if b.team_id == team.pk and not b.app and not b.prompt
        ]
        rows.append(
            {
                "team": team,
                "figures": figures,
                "availability": (1 - figures["error_rate"])
                if figures and figures["error_rate"] is not None
                else None,
                "budgets": team_budgets,
            }
        )
    return rows


@login_required
@require_safe
def dashboard(request: HttpRequest) -> HttpResponse:
    teams = _cost_teams(request)
    form = _filter_form(request, teams)
    group_bys = ("model", "team", "prompt")
    d, budgets, current = _dashboard(request, form, group_bys)
    charts = [build(d) for _groups, build in CHARTS.values()] if d.totals["requests"] else []
    query = request.GET.urlencode()
    feedback = feedback_kpis(user=request.user, filters=d.filters)
    team_rows = _team_rows(d, teams, budgets, current)
    for row in team_rows:
        row["feedback"] = feedback["teams"].get(row["team"].slug)
    context = {
        "form": form,
        "d": d,
        "totals": d.totals,
        "budget": d.budget,
        "charts": charts,
        "team_rows": team_rows,
        "feedback": feedback["totals"],
        "query": query,
        "currency": _currency(),
        "is_admin": user_is_admin_anywhere(request.user),
        "can_manage": any(user_has_role(request.user, t.pk, BUDGET_MANAGERS) for t in teams),
    }
    return render_page_or_fragment(request, "costs/dashboard.html", "costs/partials/dashboard.html", context)


@login_required
@require_safe
def chart_csv(request: HttpRequest, chart: str) -> HttpResponse:
    """One chart's data as CSV, for the same filters as the dashboard (exact values, not rounded)."""
    if chart not in CHARTS:
        raise Http404
    teams = _cost_teams(request)
    form = CostFilterForm(request.GET or None, teams=teams, values={}, today=timezone.localdate())
    group_bys, build = CHARTS[chart]
    d, _budgets, _current = _dashboard(request, form, group_bys, with_budgets=chart == "spend")
    built = build(d)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    filename = f"atalaya-{chart}-{d.window.first.isoformat()}-{d.window.last.isoformat()}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow([c.key for c in built.columns])
    for row in built.rows:
        writer.writerow(["" if v is None else str(v) for v in row])
    return response


# Budgets


def _managed_teams(request: HttpRequest) -> list[Team]:
    return list(team_list(user=request.user, roles=BUDGET_MANAGERS))


def _budget(request: HttpRequest, budget_id: int, *, manage: bool = False) -> Budget:
    """A budget the user reads (404 otherwise); with `manage`, 403 unless they manage its team."""
    budget = budget_get(user=request.user, budget_id=budget_id)
    if budget is None:
        raise Http404
    if manage and not user_has_role(request.user, budget.team_id, BUDGET_MANAGERS):
        raise PermissionDenied(_("Only the team's product owners and administrators manage its budgets."))
    return budget


@login_required
@require_safe
def budgets(request: HttpRequest) -> HttpResponse:
    teams = _cost_teams(request)
    rows = list(budget_list(user=request.user))
    current = budgets_current(budgets=rows)
    managed = {t.pk for t in _managed_teams(request)}
    context = {
        "rows": [{"budget": b, "can_manage": b.team_id in managed, **current[b.pk]} for b in rows],
        "can_create": bool(managed),
        "teams": teams,
    }
    return render(request, "costs/budgets.html", context)


@login_required
def budget_new(request: HttpRequest) -> HttpResponse:
    managed = team_list(user=request.user, roles=BUDGET_MANAGERS)
    if not managed.exists():
        raise PermissionDenied(_("Only product owners and administrators of a team create its budgets."))
    form = BudgetForm(request.POST or None, teams=managed)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            budget = budget_create(
                actor=request.user,
                team=data["team"],
                name=data["name"].strip(),
                amount=data["amount"],
                period=data["period"],
                thresholds=data["thresholds"],
                hard_limit=data["hard_limit"],
                app=data["app"].strip(),
                prompt=data["prompt"].strip(),
                recipients=data["recipients"],
                webhook_url=data["webhook_url"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Budget %(name)s created.") % {"name": budget})
            return redirect("costs:budget", budget_id=budget.pk)
    return render(request, "costs/budget_form.html", {"form": form, "budget": None})


@login_required
def budget_edit(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = _budget(request, budget_id, manage=True)
    form = BudgetForm(request.POST or None, initial=budget_initial(budget), editing=True)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in form.cleaned_data.items() if v != getattr(budget, k)}
        if not changes:
            messages.info(request, _("Nothing changed."))
            return redirect("costs:budget", budget_id=budget.pk)
        try:
            budget_update(actor=request.user, budget=budget, **changes)
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("Budget %(name)s saved.") % {"name": budget})
            return redirect("costs:budget", budget_id=budget.pk)
    return render(request, "costs/budget_form.html", {"form": form, "budget": budget})


def _budget_context(request: HttpRequest, budget: Budget, raise_form: BudgetRaiseForm | None = None) -> dict:
    can_manage = user_has_role(request.user, budget.team_id, BUDGET_MANAGERS)
    return {
        "budget": budget,
        "state": budgets_current(budgets=[budget])[budget.pk],
        "alerts": list(budget_alert_list(budget=budget)),
        "raises": list(budget_raise_list(budget=budget)),
        "can_manage": can_manage,
        "raise_form": (raise_form or BudgetRaiseForm()) if can_manage else None,
    }


@login_required
@require_safe
def budget_detail(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = _budget(request, budget_id)
    return render(request, "costs/budget_detail.html", _budget_context(request, budget))


@login_required
@require_POST
def budget_raise(request: HttpRequest, budget_id: int) -> HttpResponse:
    budget = _budget(request, budget_id, manage=True)
    form = BudgetRaiseForm(request.POST)
    if form.is_valid():
        try:
            approval = budget_raise_request(
                actor=request.user,
                budget=budget,
                extra_amount=form.cleaned_data["extra_amount"],
                reason=form.cleaned_data["reason"],
            )
        except ApplicationError as exc:
            raise_for_http(exc)
            form.add_error(None, exc.message)
        else:
            messages.success(
                request,
                format_html(
                    '{} <a href="{}">{}</a>',
                    _("Raise requested: it applies once approved."),
                    reverse("workflows:request", args=[approval.pk]),
                    _("Open request #%(id)s") % {"id": approval.pk},
                ),
            )
            return redirect("costs:budget", budget_id=budget.pk)
    context = _budget_context(request, budget, raise_form=form)
    return render(request, "costs/budget_detail.html", context)


# Prices


@login_required
def prices(request: HttpRequest) -> HttpResponse:
    """The price tables with their history; administrators add a new effective-dated price."""
    if not costs_can_read(user=request.user):
        raise PermissionDenied(_("Your roles do not show the costs of any team."))
    is_admin = user_is_admin_anywhere(request.user)
    form = None
    if is_admin:
        initial = {"effective_from": timezone.localtime().replace(second=0, microsecond=0)}
        if request.GET.get("key"):
            initial["key"] = request.GET["key"][:200]
        form = PriceForm(request.POST or None, initial=initial)
    if request.method == "POST":
        if form is None:
            raise PermissionDenied(_("Only administrators keep the price tables."))
        if form.is_valid():
            data = form.cleaned_data
            try:
                price = price_set(
                    actor=request.user,
                    key=data["key"].strip(),
                    kind=data["kind"],
                    effective_from=data["effective_from"],
                    input_per_1k=data["input_per_1k"],
                    output_per_1k=data["output_per_1k"],
                    hourly=data["hourly"],
                    source=data["source"].strip(),
                )
            except ApplicationError as exc:
                raise_for_http(exc)
                form.add_error(None, exc.message)
            else:
                messages.success(
                    request,
                    _("New price of %(key)s from %(when)s saved.")
                    % {
                        "key": price.key,
                        "when": date_format(timezone.localtime(price.effective_from), "DATETIME_FORMAT"),
                    },
                )
                return redirect("costs:prices")
    now = timezone.now()
    rows = list(price_list(user=request.user, history=True).order_by("kind", "key", "-effective_from"))
    context = {
        "rows": [{"price": p, "state": _price_state(p, now)} for p in rows],
        "form": form,
        "is_admin": is_admin,
        "keys": sorted({p.key for p in rows}),
        "kinds": {
            PriceKind.TOKENS: _("Tokens"),
            PriceKind.ENDPOINT_HOUR: _("Endpoint, hourly"),
            PriceKind.ACCELERATOR_HOUR: _("Accelerator, hourly"),
        },
        "currency": _currency(),
    }
    return render(request, "costs/prices.html", context)


def _price_state(price: Price, now: datetime) -> str:
    if price.effective_from > now:
        return "scheduled"
    if price.effective_to is not None and price.effective_to <= now:
        return "ended"
    return "in_effect"
