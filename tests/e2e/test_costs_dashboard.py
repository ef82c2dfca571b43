"""A product owner opens the costs dashboard in a real browser, changes the filters (teams, model,
dates), and the spend and request figures shown match GET /api/v1/costs/summary for the same filters."""

import importlib
import json
from datetime import datetime, time, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.utils import timezone
from playwright.sync_api import Page, expect
from rest_framework.test import APIClient

from apps.accounts.roles import Role
from apps.costs.services import usage_rollup
from apps.costs.templatetags.costs_ui import count, money
from apps.logs.models import LogEvent
from apps.logs.services import log_events_scan
from tests.factories import make_token, make_world, member

PASSWORD = "demo-password"  # tests.factories.UserFactory


def _event(rid: str, at: datetime, model: str, tokens: tuple[int, int], status: str = "ok") -> dict:
    return {
        "request_id": rid,
        "started_at": at.isoformat(),
        "model": model,
        "input": "hello",
        "app": "bot",
        "tokens_in": tokens[0],
        "tokens_out": tokens[1],
        "latency_ms": 900,
        "status": status,
    }


def _send(user, team, events: list[dict]) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user, team, 'logs:write')}")
    response = client.post(
        "/api/v1/logs/batch", data=json.dumps({"events": events}), content_type="application/json"
    )
    assert response.status_code == 202, response.content


@pytest.fixture
def usage(transactional_db, django_db_serialized_rollback):
    """The owner manages support and finance; both teams have priced calls of two models over the last
    few days, and support one call of a model without a price. The database is restored afterwards (with
    the list prices that migration 0002 seeds), and those prices are seeded again in case an earlier
    browser test flushed them."""
    importlib.import_module("apps.costs.migrations.0002_seed_vertex_prices").seed(apps, None)
    world = make_world()
    member(world.owner, world.finance, Role.PRODUCT_OWNER)
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    support = [
        _event(f"s{n}", now - timedelta(days=n % 9, hours=1), "gemini-2.5-flash", (1000 + n, 200))
        for n in range(12)
    ]
    support += [
        _event("s-pro-1", now - timedelta(days=3, hours=2), "gemini-2.5-pro", (3000, 900)),
        _event("s-pro-2", now - timedelta(days=12, hours=2), "gemini-2.5-pro", (2000, 500), status="error"),
        _event("s-own", now - timedelta(days=1, hours=3), "my-own-model", (500, 500)),
    ]
    finance = [
        _event(f"f{n}", now - timedelta(days=n, hours=4), "gemini-2.5-pro", (4000, 1500)) for n in range(5)
    ]
    _send(world.eng, world.support, support)
    _send(world.fin_eng, world.finance, finance)
    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))
    usage_rollup()
    return world


def _sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _api_totals(page: Page, base: str, *, first, last, teams=(), model="") -> dict:
    """The API summary for whole days [first, last] in the console's zone: what the dashboard shows."""
    zone = timezone.get_current_timezone()
    params = [
        ("from", datetime.combine(first, time.min, tzinfo=zone).isoformat()),
        ("to", datetime.combine(last + timedelta(days=1), time.min, tzinfo=zone).isoformat()),
    ]
    params += [("team", slug) for slug in teams]
    if model:
        params.append(("model", model))
    response = page.request.get(f"{base}/api/v1/costs/summary?{urlencode(params)}")
    assert response.status == 200, response.text()
    return response.json()["totals"]


def _assert_shown(page: Page, totals: dict) -> None:
    spend = page.locator("#kpi-spend data")
    requests = page.locator("#kpi-requests data")
    expect(requests).to_have_attribute("value", str(totals["requests"]))
    expect(requests).to_have_text(count(totals["requests"]))
    assert Decimal(spend.get_attribute("value")) == Decimal(totals["spend"])
    expect(spend).to_have_text(money(Decimal(totals["spend"])))


def _change(page: Page, action) -> None:
    """Do something to the filters and wait for htmx to swap the new figures in and push the address.
    The response arriving is not enough: htmx handles it a moment later, and a next change made before
    then replaces the request (hx-sync) and never adds its history entry. htmx takes its request class
    off the indicator once the swap and the history push are done."""
    with page.expect_response(
        lambda r: "/costs/?" in r.url and r.request.headers.get("hx-request") == "true"
    ):
        action()
    expect(page.locator("#costs-indicator.htmx-request")).to_have_count(0)


def test_product_owner_filters_the_dashboard_and_the_figures_match_the_api(
    page: Page, live_server, usage, tmp_path
):
    base = live_server.url
    today = timezone.localdate()
    _sign_in(page, base, "owner")
    page.get_by_role("link", name="Costs").click()
    expect(page.get_by_role("heading", name="Costs", level=1)).to_be_visible()
    expect(page.locator("#chart-spend[data-drawn=true]")).to_be_visible()  # Plotly drew the chart

    # This month, both teams (the default).
    _assert_shown(page, _api_totals(page, base, first=today.replace(day=1), last=today))

    # The last 30 days.
    _change(page, lambda: page.get_by_label("Period", exact=True).select_option("30d"))
    first = today - timedelta(days=29)
    everything = _api_totals(page, base, first=first, last=today)
    assert everything["requests"] == 20 and everything["unpriced_requests"] == 1
    _assert_shown(page, everything)
    expect(page.locator("#unpriced-alert")).to_be_visible()

    # One team.
    _change(page, lambda: page.get_by_label("Finance", exact=True).check())
    finance = _api_totals(page, base, first=first, last=today, teams=["finance"])
    assert finance["requests"] == 5
    _assert_shown(page, finance)
    expect(page.locator('tr[data-team="support"]')).to_have_count(0)

    # Both teams, one model.
    _change(page, lambda: page.get_by_label("Support", exact=True).check())
    _change(page, lambda: page.get_by_label("Model", exact=True).select_option("gemini-2.5-pro"))
    pro = _api_totals(
        page, base, first=first, last=today, teams=["finance", "support"], model="gemini-2.5-pro"
    )
    assert pro["requests"] == 7
    _assert_shown(page, pro)

    # Custom dates: choosing a date switches the period to custom.
    since = today - timedelta(days=4)
    until = today - timedelta(days=1)
    _change(page, lambda: page.get_by_label("From", exact=True).fill(since.isoformat()))
    expect(page.get_by_label("Period", exact=True)).to_have_value("custom")
    _change(page, lambda: page.get_by_label("To", exact=True).fill(until.isoformat()))
    narrow = _api_totals(
        page, base, first=since, last=until, teams=["finance", "support"], model="gemini-2.5-pro"
    )
    assert 0 < narrow["requests"] < pro["requests"]
    _assert_shown(page, narrow)
    expect(page.locator("#chart-spend[data-drawn=true]")).to_be_visible()  # redrawn after the swap

    # Back and forward go through the filters' history, charts drawn again.
    page.go_back()
    expect(page.get_by_label("To", exact=True)).to_have_value("")
    expect(page.get_by_label("From", exact=True)).to_have_value(since.isoformat())
    expect(page.get_by_label("Model", exact=True)).to_have_value("gemini-2.5-pro")
    expect(page.locator("#chart-spend[data-drawn=true]")).to_be_visible()
    page.go_back()
    expect(page.get_by_label("From", exact=True)).to_have_value("")
    expect(page.get_by_label("Period", exact=True)).to_have_value("30d")
    _assert_shown(page, pro)
    page.go_forward()
    page.go_forward()
    expect(page.get_by_label("To", exact=True)).to_have_value(until.isoformat())
    _assert_shown(page, narrow)
    expect(page.locator("#chart-spend[data-drawn=true]")).to_be_visible()

    # The filters are in the address (a reload or a shared link shows the same figures) and in the CSV links.
    page.reload()
    _assert_shown(page, narrow)
    csv_link = page.get_by_role("link", name="CSV Spend over time")
    assert f"since={since.isoformat()}" in csv_link.get_attribute("href")
    assert "model=gemini-2.5-pro" in csv_link.get_attribute("href")

    # The chart's data is also a table, for keyboard and screen-reader users.
    page.locator("[data-chart-card=spend] summary").click()
    expect(page.locator("[data-chart-card=spend] table tbody tr")).to_have_count((until - since).days + 1)
    page.screenshot(path=str(tmp_path / "costs-dashboard.png"), full_page=True)
