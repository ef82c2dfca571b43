"""The hard limit holds where applications spend: resolve answers 429 naming the budget."""

from decimal import Decimal

from django.core.cache import cache
from django.utils import timezone

from apps.costs.models import Granularity, UsageRollup
from apps.costs.services import budget_create, budget_evaluate
from tests.factories import make_approved, make_prompt, make_token, put_on_label


def _spend(world, amount):
    UsageRollup.objects.create(
        granularity=Granularity.HOUR,
        team=world.support,
        model="m",
        requests=1,
        cost=Decimal(amount),
        bucket=timezone.now().replace(minute=0, second=0, microsecond=0),
    )


def test_resolve_answers_429_when_a_hard_budget_is_spent(world, api_as):
    prompt = make_prompt(world.support, world.eng)
    put_on_label(prompt, make_approved(prompt, world.eng, world.gov), "production", world.gov)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    url = "/api/v1/prompts/greeting/resolve?label=production"
    budget = budget_create(
        actor=world.owner, team=world.support, name="team-month", amount=Decimal("10"), hard_limit=True
    )
    _spend(world, "9.99")
    budget_evaluate(budget=budget)
    assert client.get(url).status_code == 200
    _spend(world, "0.01")  # exactly the amount
    budget_evaluate(budget=budget)
    cache.clear()
    response = client.get(url)
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["code"] == "budget_exhausted"
    assert error["details"]["budget"] == "team-month"
    assert error["details"]["amount"] == "10.00" and error["details"]["spend"] == "10.00000000"
    assert error["details"]["period_end"]
    assert api_as(world.eng).get(url).status_code == 429  # a browser session too
    other = api_as(token=make_token(world.fin_eng, world.finance, "prompts:read"))
    assert other.get(url).status_code == 404  # other teams are not blocked (nor can they see it)


def test_prompt_and_app_budgets_block_only_their_calls(world, api_as):
    prompt = make_prompt(world.support, world.eng)
    put_on_label(prompt, make_approved(prompt, world.eng, world.gov), "production", world.gov)
    other = make_prompt(world.support, world.eng, name="other")
    put_on_label(other, make_approved(other, world.eng, world.gov), "production", world.gov)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    budget_create(
        actor=world.owner,
        team=world.support,
        name="greeting-only",
        amount=Decimal("1"),
        hard_limit=True,
        prompt="greeting",
    )
    budget_create(
        actor=world.owner,
        team=world.support,
        name="bot-only",
        amount=Decimal("1"),
        hard_limit=True,
        app="bot",
    )
    UsageRollup.objects.create(
        granularity=Granularity.HOUR,
        team=world.support,
        model="m",
        requests=1,
        app="bot",
        prompt="greeting",
        cost=Decimal("5"),
        bucket=timezone.now().replace(minute=0, second=0, microsecond=0),
    )
    from apps.costs.services import budgets_evaluate_all

    budgets_evaluate_all()
    cache.clear()
    assert client.get("/api/v1/prompts/greeting/resolve").status_code == 429
    assert client.get("/api/v1/prompts/other/resolve").status_code == 200
    assert client.get("/api/v1/prompts/other/resolve?app=bot").status_code == 429
    assert client.get("/api/v1/prompts/other/resolve?app=mail").status_code == 200
