"""End-user feedback in the costs dashboard's KPIs: the share of positive answers and the mean score of the
calls the dashboard's filters select (teams, app, model, prompt, dates)."""

import re

import pytest
from django.urls import reverse

from apps.feedback.selectors import feedback_kpis
from apps.feedback.services import end_user_feedback_record
from tests.ui.test_costs_views import RANGE, body, client_for, filters_for, usage  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def feedback(usage):  # noqa: F811
    world = usage
    for request_id, values in [
        ("s1", {"thumbs": True}),
        ("s2", {"thumbs": False, "score": 2}),
        ("s3", {"score": 5}),
        ("s3", {"thumbs": True, "end_user": "another"}),
        ("not-logged-yet", {"thumbs": False}),  # no stored call: not attributed to any app or model
    ]:
        end_user_feedback_record(actor=world.eng, team=world.support, request_id=request_id, **values)
    end_user_feedback_record(actor=world.fin_eng, team=world.finance, request_id="f1", thumbs=False)
    return world


def kpi(html: str, name: str) -> str | None:
    match = re.search(rf'id="kpi-feedback".*?<data value="([^"]*)" data-kpi="{name}"', html, re.S)
    return match.group(1) if match else None


def test_the_selector_counts_positive_share_and_mean_score(feedback):
    world = feedback
    figures = feedback_kpis(user=world.owner, filters=filters_for(world))
    totals = figures["totals"]
    assert (totals["responses"], totals["rated"], totals["positive"]) == (4, 4, 3)
    assert totals["positive_share"] == 0.75 and totals["mean_score"] == 3.5
    low, high = totals["positive_interval"]
    assert low < 0.75 < high
    assert set(figures["teams"]) == {"support"}  # the owner's teams only
    both = feedback_kpis(user=world.eng2, filters=filters_for(world))  # eng2 reads support and finance
    assert both["teams"]["finance"]["positive"] == 0 and both["teams"]["finance"]["rated"] == 1


def test_filters_narrow_the_feedback(feedback):
    world = feedback
    pro = feedback_kpis(user=world.owner, filters=filters_for(world, model="gemini-2.5-pro"))["totals"]
    assert (pro["rated"], pro["positive"], pro["mean_score"]) == (2, 2, 5.0)
    mail = feedback_kpis(user=world.owner, filters=filters_for(world, app="mail"))["totals"]
    assert mail["responses"] == 0 and mail["positive_share"] is None
    greeting = feedback_kpis(user=world.owner, filters=filters_for(world, prompt="greeting"))["totals"]
    assert (greeting["rated"], greeting["positive"]) == (2, 1)


def test_the_dashboard_shows_the_figures(feedback):
    html = body(client_for(feedback, "owner").get(reverse("costs:dashboard"), RANGE))
    assert float(kpi(html, "positive-share")) == pytest.approx(0.75)
    assert float(kpi(html, "mean-score")) == pytest.approx(3.5)
    assert re.search(
        r'data-team="support">.*?<td data-feedback><span class="stat-main"><data value="0.750000"', html, re.S
    )
    filtered = body(client_for(feedback, "owner").get(reverse("costs:dashboard"), {**RANGE, "app": "mail"}))
    assert kpi(filtered, "positive-share") is None
    assert re.search(r'id="kpi-feedback">.*?No data yet', filtered, re.S)


def test_no_feedback_outside_the_dates(feedback):
    html = body(
        client_for(feedback, "owner").get(
            reverse("costs:dashboard"), {"range": "custom", "since": "2026-09-01", "until": "2026-09-30"}
        )
    )
    assert kpi(html, "positive-share") is None
