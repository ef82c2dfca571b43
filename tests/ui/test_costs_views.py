"""The costs pages: the dashboard (filters, KPIs, charts and their CSV), budgets (create, edit, raise)
and the price tables: who sees what, that the numbers are the selectors', and that a refused or invalid
write changes nothing."""

import csv
import importlib
import io
import json
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.costs.models import Budget, BudgetRaise, Price
from apps.costs.selectors import CostFilters, costs_summary
from apps.costs.services import budget_create, usage_rollup
from apps.logs.models import LogEvent
from apps.logs.services import log_events_scan
from apps.workflows.models import ApprovalRequest
from tests.factories import make_token

T0 = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
RANGE = {"range": "custom", "since": "2026-10-01", "until": "2026-10-31"}
USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_eng", "fin_gov"]


def ev(rid, *, at=T0, model="gemini-2.5-flash", tokens=(1000, 1000), latency_ms=800, status="ok", **extra):
    return {
        "request_id": rid,
        "started_at": at.isoformat(),
        "model": model,
        "input": "hi",
        "tokens_in": tokens[0],
        "tokens_out": tokens[1],
        "latency_ms": latency_ms,
        "status": status,
        **extra,
    }


def store(api_as, user, team, *events):
    client = api_as(token=make_token(user, team, "logs:write"))
    response = client.post(
        "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
    )
    assert response.status_code == 202, response.content


def seed_prices() -> None:
    """The list prices that migration 0002 seeds: a browser test (transactional) before this one may have
    flushed them."""
    from django.apps import apps

    importlib.import_module("apps.costs.migrations.0002_seed_vertex_prices").seed(apps, None)


@pytest.fixture
def usage(world, api_as):
    """Priced and unpriced events of support (two apps, three models, two prompts) and of finance, over
    three days of October 2026, rolled up."""
    seed_prices()
    store(
        api_as,
        world.eng,
        world.support,
        ev("s1", app="bot", prompt="greeting", prompt_version=1),
        ev(
            "s2", at=T0 + timedelta(minutes=5), app="bot", prompt="greeting", prompt_version=1, status="error"
        ),
        ev(
            "s3",
            at=T0 + timedelta(days=1),
            model="gemini-2.5-pro",
            app="bot",
            prompt="refund",
            latency_ms=2500,
        ),
        ev("s4", at=T0 + timedelta(days=2, hours=3), model="my-own-model", app="mail"),
        ev("s5", at=T0 + timedelta(days=2, hours=4), app="mail", tokens=(5000, 200)),
    )
    store(
        api_as,
        world.fin_eng,
        world.finance,
        ev("f1", app="ledger", model="gemini-2.5-pro", tokens=(9000, 9000)),
    )
    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))
    usage_rollup()
    return world


def client_for(world, username) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


def body(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def data_value(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}".*?<data value="([^"]*)"', html, re.S)
    assert match, element_id
    return match.group(1)


def filters_for(world, *, teams=(), **kwargs) -> CostFilters:
    zone = timezone.get_current_timezone()
    return CostFilters(
        since=datetime(2026, 10, 1, tzinfo=zone).astimezone(UTC),
        until=datetime(2026, 11, 1, tzinfo=zone).astimezone(UTC),
        team_ids=tuple(t.pk for t in teams),
        **kwargs,
    )


@pytest.fixture
def budget(world):
    return budget_create(actor=world.owner, team=world.support, name="monthly", amount=Decimal("100"))


# Who sees what

PAGES = {
    "costs:dashboard": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
    "costs:budgets": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
    "costs:budget_new": {
        "admin": 200,
        "gov": 403,
        "eng": 403,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 403,
        "fin_gov": 403,
    },
    "costs:budget": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 404,
        "fin_eng": 404,
        "fin_gov": 404,
    },
    "costs:budget_edit": {
        "admin": 200,
        "gov": 403,
        "eng": 403,
        "owner": 200,
        "ann1": 404,
        "fin_eng": 404,
        "fin_gov": 404,
    },
    "costs:prices": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
    "costs:csv": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, budget):
    if page in {"costs:budget", "costs:budget_edit"}:
        url = reverse(page, args=[budget.pk])
    elif page == "costs:csv":
        url = reverse(page, args=["spend"])
    else:
        url = reverse(page)
    for username in USERS:
        response = client_for(world, username).get(url)
        if username == "anon":
            assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
            continue
        assert response.status_code == PAGES[page][username], (page, username, response.status_code)


def test_costs_is_in_the_navigation_of_cost_readers_only(world):
    def keys(username):
        response = client_for(world, username).get(reverse("accounts:tokens"))
        return [item["key"] for item in response.context["nav_items"]]

    assert "costs" in keys("owner") and "costs" in keys("eng") and "costs" in keys("fin_gov")
    assert "costs" not in keys("ann1")


def test_unknown_chart_and_budget_are_404(world, budget):
    client = client_for(world, "owner")
    assert client.get(reverse("costs:csv", args=["nope"])).status_code == 404
    assert client.get(reverse("costs:budget", args=[budget.pk + 1000])).status_code == 404


# The dashboard


def test_dashboard_totals_are_the_selectors(usage):
    html = body(client_for(usage, "owner").get(reverse("costs:dashboard"), RANGE))
    expected = costs_summary(user=usage.owner, filters=filters_for(usage))["totals"]
    assert Decimal(data_value(html, "kpi-spend")) == expected["spend"]
    assert int(data_value(html, "kpi-requests")) == expected["requests"] == 5
    assert int(data_value(html, "kpi-unpriced")) == expected["unpriced_requests"] == 1
    assert float(data_value(html, "kpi-error-rate")) == expected["error_rate"]
    assert 'id="unpriced-alert"' in html  # unpriced requests are flagged, never shown as zero
    assert "No data yet" in html  # feedback score
    for key in (
        "spend",
        "by-model",
        "by-team",
        "by-prompt",
        "cost-per-1k",
        "tokens",
        "requests",
        "error-rate",
        "latency",
    ):
        assert f'data-chart="chart-{key}-figure"' in html, key
        assert reverse("costs:csv", args=[key]) in html, key
    assert html.count('<details class="chart-data">') >= 9  # every chart has its data as a table
    assert "vendor/plotly/plotly.min.js" in html and "js/atalaya-charts.js" in html
    assert "cdn" not in re.sub(r"<script[^>]*json[^>]*>.*?</script>", "", html, flags=re.S).lower()


def test_product_owners_see_their_own_teams_only(usage):
    client = client_for(usage, "owner")
    html = body(client.get(reverse("costs:dashboard"), {**RANGE, "team": "finance"}))
    assert 'data-team="finance"' not in html and "ledger" not in html  # none of finance's figures
    assert 'data-team="support"' in html
    assert int(data_value(html, "kpi-requests")) == 5  # the invalid team is left out: support only
    rows = list(
        csv.reader(io.StringIO(client.get(reverse("costs:csv", args=["by-team"]), RANGE).content.decode()))
    )
    assert [r[0] for r in rows[1:]] == ["support"]
    # Someone in both teams' finance only sees finance.
    html = body(client_for(usage, "fin_eng").get(reverse("costs:dashboard"), RANGE))
    assert int(data_value(html, "kpi-requests")) == 1


def test_filters_narrow_the_figures(usage):
    client = client_for(usage, "admin")
    cases = [
        ({"model": "gemini-2.5-pro"}, {"model": "gemini-2.5-pro"}),
        ({"app": "mail"}, {"app": "mail"}),
        ({"prompt": "greeting"}, {"prompt": "greeting"}),
        ({"range": "custom", "since": "2026-10-06", "until": "2026-10-06"}, None),
    ]
    for params, selector_kwargs in cases:
        html = body(client.get(reverse("costs:dashboard"), {**RANGE, **params}))
        if selector_kwargs is None:
            zone = timezone.get_current_timezone()
            filters = CostFilters(
                since=datetime(2026, 10, 6, tzinfo=zone).astimezone(UTC),
                until=datetime(2026, 10, 7, tzinfo=zone).astimezone(UTC),
            )
        else:
            filters = filters_for(usage, **selector_kwargs)
        expected = costs_summary(user=usage.admin, filters=filters)["totals"]
        assert int(data_value(html, "kpi-requests")) == expected["requests"], params
        assert Decimal(data_value(html, "kpi-spend")) == expected["spend"], params
    assert (
        int(
            data_value(
                body(client.get(reverse("costs:dashboard"), {**RANGE, "model": "gemini-2.5-pro"})),
                "kpi-requests",
            )
        )
        == 1
    )


def test_invalid_filters_are_shown_and_left_out(usage):
    html = body(
        client_for(usage, "owner").get(
            reverse("costs:dashboard"), {"range": "custom", "since": "2026-10-20", "until": "2026-10-01"}
        )
    )
    assert "The end date is before the start date." in html
    assert "filter-errors" in html


def test_htmx_gets_the_results_only(usage):
    response = client_for(usage, "owner").get(reverse("costs:dashboard"), RANGE, HTTP_HX_REQUEST="true")
    html = body(response)
    assert "<html" not in html and 'id="kpi-spend"' in html
    assert "HX-Request" in response["Vary"]


def test_default_period_is_this_month_with_budget_and_forecast(world, api_as, budget):
    seed_prices()
    store(api_as, world.eng, world.support, ev("now", at=timezone.now() - timedelta(minutes=1)))
    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))
    usage_rollup()
    from apps.costs.services import budget_evaluate

    budget_evaluate(budget=budget)
    html = body(client_for(world, "owner").get(reverse("costs:dashboard")))
    assert int(data_value(html, "kpi-requests")) == 1
    assert Decimal(data_value(html, "kpi-budget")) == Decimal("0.0028")  # percent of 100 USD
    figure = json.loads(re.search(r'id="chart-spend-figure"[^>]*>(.*?)</script>', html, re.S).group(1))
    names = [trace["name"] for trace in figure["data"]]
    assert names == ["Daily spend", "Cumulative spend", "Month-end forecast", "Monthly budget"]
    assert figure["data"][3]["y"] == [100.0, 100.0]


def test_empty_dashboard_says_so(world):
    html = body(client_for(world, "owner").get(reverse("costs:dashboard")))
    assert "No usage matches these filters." in html
    assert int(data_value(html, "kpi-requests")) == 0


def test_dashboard_in_spanish(usage):
    client = client_for(usage, "owner")
    client.cookies["django_language"] = "es"
    html = body(client.get(reverse("costs:dashboard"), RANGE))
    assert "Gasto" in html and "Solicitudes" in html and "Todavía no hay datos" in html


# CSV: the chart's data, the selector's numbers


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_csv_equals_the_selectors_numbers(usage):
    client = client_for(usage, "admin")
    filters = filters_for(usage)
    by_day = {g["key"]: g for g in costs_summary(user=usage.admin, filters=filters, group_by="day")["groups"]}
    rows = read_csv(client.get(reverse("costs:csv", args=["spend"]), RANGE))
    assert len(rows) == 31  # every day of October, with usage or not
    cumulative = Decimal(0)
    for row in rows:
        day = by_day.get(row["day"])
        spend = day["spend"] if day else Decimal(0)
        cumulative += spend
        assert Decimal(row["spend"]) == spend, row
        assert Decimal(row["cumulative_spend"]) == cumulative
    assert cumulative == costs_summary(user=usage.admin, filters=filters)["totals"]["spend"]

    for chart, group_by in (("by-model", "model"), ("by-team", "team"), ("by-prompt", "prompt")):
        expected = costs_summary(user=usage.admin, filters=filters, group_by=group_by)["groups"]
        rows = read_csv(client.get(reverse("costs:csv", args=[chart]), RANGE))
        assert len(rows) == len(expected), chart
        for row, group in zip(rows, expected, strict=True):
            assert Decimal(row["spend"]) == group["spend"], chart
            assert int(row["requests"]) == group["requests"], chart
            assert int(row["unpriced_requests"]) == group["unpriced_requests"], chart

    series = {
        "requests": ("requests", "errors", "unpriced_requests"),
        "tokens": ("tokens_in", "tokens_out"),
        "error-rate": ("error_rate",),
        "latency": ("latency_p50_ms", "latency_p95_ms"),
        "cost-per-1k": ("cost_per_1k_tokens",),
        "pii-rate": ("pii_rate",),
    }
    for chart, fields in series.items():
        for row in read_csv(client.get(reverse("costs:csv", args=[chart]), RANGE)):
            day = by_day.get(row["day"])
            for name in fields:
                if day is None or day[name] is None:
                    assert row[name] in ("", "0"), (chart, row)
                else:
                    assert Decimal(row[name]) == Decimal(str(day[name])), (chart, name, row)


def test_csv_follows_the_filters(usage):
    rows = read_csv(
        client_for(usage, "admin").get(reverse("costs:csv", args=["by-model"]), {**RANGE, "app": "mail"})
    )
    assert {r["model"] for r in rows} == {"gemini-2.5-flash", "my-own-model"}
    unpriced = next(r for r in rows if r["model"] == "my-own-model")
    assert unpriced["unpriced_requests"] == "1" and Decimal(unpriced["spend"]) == 0


# Budgets


def snapshot():
    return (
        list(
            Budget.objects.order_by("pk").values_list("name", "amount", "thresholds", "hard_limit", "active")
        ),
        AuditEvent.objects.count(),
        BudgetRaise.objects.count(),
        ApprovalRequest.objects.count(),
        Price.objects.count(),
    )


NEW_BUDGET = {
    "team": "support",
    "name": "weekly-bot",
    "amount": "25.50",
    "period": "week",
    "thresholds": "80, 50, 100",
    "hard_limit": "on",
    "app": "bot",
    "prompt": "",
    "recipients": "po@example.com\nfinance@example.com",
    "webhook_url": "https://chat.example.com/hook/abc",
}


def test_budget_create_is_audited(world):
    response = client_for(world, "owner").post(reverse("costs:budget_new"), NEW_BUDGET)
    budget = Budget.objects.get(name="weekly-bot")
    assert response.status_code == 302 and response["Location"] == reverse("costs:budget", args=[budget.pk])
    assert (budget.amount, budget.period, budget.thresholds, budget.hard_limit, budget.app) == (
        Decimal("25.50"),
        "week",
        [50, 80, 100],
        True,
        "bot",
    )
    assert budget.recipients == ["po@example.com", "finance@example.com"]
    assert AuditEvent.objects.filter(action="costs.budget_created", actor_id=world.owner.pk).count() == 1
    html = body(client_for(world, "eng").get(reverse("costs:budget", args=[budget.pk])))
    assert "weekly-bot" in html and "chat.example.com" not in html  # the webhook is a secret: "set" only


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"amount": "-3"}, "Ensure this value is greater than or equal to 0.01."),
        ({"amount": ""}, "This field is required."),
        ({"thresholds": "fifty"}, "Whole numbers separated by commas"),
        ({"thresholds": "0, 2000"}, "between 1 and 1000"),
        ({"recipients": "not-an-address"}, "not-an-address is not an e-mail address."),
        ({"webhook_url": "nope nope"}, "Enter a valid URL."),
        ({"webhook_url": "http://chat.example.com/hook"}, "Only https:// URLs"),
        ({"team": "finance"}, "Select a valid choice."),
        ({"period": "year"}, "Select a valid choice."),
    ],
)
def test_budget_create_validation_writes_nothing(world, change, error):
    before = snapshot()
    html = body(client_for(world, "owner").post(reverse("costs:budget_new"), {**NEW_BUDGET, **change}))
    assert error in html, change
    assert 'aria-invalid="true"' in html
    assert snapshot() == before


def test_budget_name_taken_is_shown_and_writes_nothing(world, budget):
    before = snapshot()
    html = body(
        client_for(world, "owner").post(reverse("costs:budget_new"), {**NEW_BUDGET, "name": "monthly"})
    )
    assert "already has a budget named" in html
    assert snapshot() == before


def test_refused_budget_writes_change_nothing(world, budget):
    before = snapshot()
    writes = [
        (reverse("costs:budget_new"), NEW_BUDGET, {"gov": 403, "eng": 403, "ann1": 403, "fin_eng": 403}),
        (
            reverse("costs:budget_edit", args=[budget.pk]),
            {"amount": "1", "period": "month", "thresholds": "50"},
            {"gov": 403, "eng": 403, "ann1": 404, "fin_eng": 404, "fin_gov": 404},
        ),
        (
            reverse("costs:budget_raise", args=[budget.pk]),
            {"extra_amount": "10", "reason": "launch"},
            {"gov": 403, "eng": 403, "ann1": 404, "fin_eng": 404, "fin_gov": 404},
        ),
    ]
    for url, data, refusals in writes:
        anonymous = client_for(world, "anon").post(url, data)
        assert anonymous.status_code == 302 and reverse("accounts:login") in anonymous["Location"]
        for username, status in refusals.items():
            response = client_for(world, username).post(url, data)
            assert response.status_code == status, (url, username, response.status_code)
            assert snapshot() == before, (url, username)


def test_budget_writes_need_csrf(world, budget):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.owner)
    before = snapshot()
    assert client.post(reverse("costs:budget_new"), NEW_BUDGET).status_code == 403
    assert (
        client.post(
            reverse("costs:budget_raise", args=[budget.pk]), {"extra_amount": "1", "reason": "x"}
        ).status_code
        == 403
    )
    assert client.get(reverse("costs:budget_raise", args=[budget.pk])).status_code == 405
    assert snapshot() == before


def test_budget_edit_saves_the_changes_only_and_is_audited(world, budget):
    client = client_for(world, "owner")
    form = body(client.get(reverse("costs:budget_edit", args=[budget.pk])))
    assert 'value="50, 80, 100"' in form and 'name="team"' not in form  # team and name are fixed
    data = {
        "amount": "150",
        "period": "month",
        "thresholds": "50, 80, 100",
        "hard_limit": "on",
        "active": "on",
    }
    response = client.post(reverse("costs:budget_edit", args=[budget.pk]), data)
    assert response.status_code == 302
    budget.refresh_from_db()
    assert (budget.amount, budget.hard_limit) == (Decimal("150"), True)
    event = AuditEvent.objects.filter(action="costs.budget_updated").latest("pk")
    assert set(event.changes["to"]) == {"amount", "hard_limit"}
    # Nothing changed: nothing written.
    before = snapshot()
    response = client.post(reverse("costs:budget_edit", args=[budget.pk]), data)
    assert response.status_code == 302 and snapshot() == before
    # Invalid: shown, nothing written.
    html = body(client.post(reverse("costs:budget_edit", args=[budget.pk]), {**data, "thresholds": "x"}))
    assert "Whole numbers separated by commas" in html and snapshot() == before


def test_raise_request_opens_an_approval_request_and_the_review_page_shows_it(world, budget):
    client = client_for(world, "owner")
    html = body(client.get(reverse("costs:budget", args=[budget.pk])))
    assert "Request a raise" in html
    assert "Request a raise" not in body(
        client_for(world, "eng").get(reverse("costs:budget", args=[budget.pk]))
    )

    before = snapshot()
    for data, error in (
        ({"extra_amount": "0", "reason": "launch"}, "greater than or equal to 0.01"),
        ({"extra_amount": "50", "reason": ""}, "This field is required."),
    ):
        assert error in body(client.post(reverse("costs:budget_raise", args=[budget.pk]), data))
        assert snapshot() == before

    response = client.post(
        reverse("costs:budget_raise", args=[budget.pk]),
        {"extra_amount": "50", "reason": "Black Friday"},
        follow=True,
    )
    html = body(response)
    approval = ApprovalRequest.objects.get(subject_kind="budget_raise")
    assert (
        reverse("workflows:request", args=[approval.pk]) in html
    )  # the message and the raises table link it
    assert "Black Friday" in html
    assert AuditEvent.objects.filter(action="costs.raise_requested", actor_id=world.owner.pk).count() == 1

    review = body(client_for(world, "gov").get(reverse("workflows:request", args=[approval.pk])))
    assert "Budget raise" in review and "Black Friday" in review and "+50" in review
    assert reverse("costs:budget", args=[budget.pk]) in review
    assert 'value="approve"' in review  # governance decides in the existing review page
    assert 'value="approve"' not in body(client.get(reverse("workflows:request", args=[approval.pk])))


# Prices


def test_prices_show_the_history(world):
    seed_prices()
    from apps.costs.services import price_set

    price_set(
        actor=world.admin,
        key="gemini-2.5-flash",
        effective_from=datetime(2026, 6, 1, tzinfo=UTC),
        input_per_1k=Decimal("0.0004"),
        output_per_1k=Decimal("0.003"),
    )
    html = body(client_for(world, "eng").get(reverse("costs:prices")))
    assert html.count('data-price-key="gemini-2.5-flash"') == 2  # the seeded one (ended) and the new one
    assert "Ended" in html and "In effect" in html
    assert "New price" not in html and 'name="key"' not in html  # read-only for non-administrators
    assert 'name="key"' in body(client_for(world, "admin").get(reverse("costs:prices")))


def test_admin_adds_a_price_audited(world):
    data = {
        "kind": "tokens",
        "key": "llama-3.3-70b",
        "input_per_1k": "0.00072",
        "output_per_1k": "0.00072",
        "hourly": "",
        "effective_from": "2026-10-01T00:00",
        "source": "contract",
    }
    response = client_for(world, "admin").post(reverse("costs:prices"), data)
    assert response.status_code == 302
    price = Price.objects.get(key="llama-3.3-70b")
    assert (price.input_per_1k, price.output_per_1k, price.created_by) == (
        Decimal("0.00072"),
        Decimal("0.00072"),
        world.admin,
    )
    assert AuditEvent.objects.filter(action="costs.price_set", actor_id=world.admin.pk).count() == 1
    # The same start again: the service refuses, the form says why, nothing is written.
    before = snapshot()
    html = body(client_for(world, "admin").post(reverse("costs:prices"), data))
    assert "already has a price from" in html and snapshot() == before
    # Invalid input: nothing written.
    for change in (
        {"input_per_1k": "-1"},
        {"output_per_1k": ""},
        {"effective_from": "tomorrow"},
        {"kind": "x"},
    ):
        html = body(client_for(world, "admin").post(reverse("costs:prices"), {**data, **change}))
        assert 'aria-invalid="true"' in html or "errorlist" in html, change
        assert snapshot() == before, change


def test_only_admins_add_prices(world):
    data = {
        "kind": "tokens",
        "key": "m",
        "input_per_1k": "1",
        "output_per_1k": "1",
        "effective_from": "2026-10-01T00:00",
    }
    before = snapshot()
    for username in ("gov", "eng", "owner", "fin_eng", "ann1"):
        assert client_for(world, username).post(reverse("costs:prices"), data).status_code == 403, username
    assert snapshot() == before
