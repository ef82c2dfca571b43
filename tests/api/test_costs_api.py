"""API v1 for costs: GET /costs/summary, budgets (list, create, retrieve, update, raise) and prices.

Every endpoint × role × own team / other team (status, nothing changed and no audit event on a refusal,
a write audited), tokens and their scopes, bad input (400/422, nothing written), the summary's numbers
against the events stored, and product owners seeing their own teams only."""

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from apps.accounts.roles import Role, Scope
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.costs.models import Budget, BudgetAlert, BudgetRaise, BudgetState, Price, RaiseStatus
from apps.costs.services import budget_create, price_set, usage_rollup
from apps.logs.models import LogEvent
from apps.logs.services import log_events_scan
from apps.workflows.models import ApprovalRequest
from tests.factories import UserFactory, make_token, make_world, member

T0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
PRICED_FROM = datetime(2026, 1, 1, tzinfo=UTC)


def set_test_prices() -> None:
    """Prices of our own (not the seeded ones, which a transactional test elsewhere may flush)."""
    price_set(
        actor=None,
        key="test-flash",
        effective_from=PRICED_FROM,
        input_per_1k=Decimal("0.0003"),
        output_per_1k=Decimal("0.0025"),
    )
    price_set(
        actor=None,
        key="test-lite",
        effective_from=PRICED_FROM,
        input_per_1k=Decimal("0.0001"),
        output_per_1k=Decimal("0.0004"),
    )


# What a costs call could change


def costs_snapshot() -> dict[str, Any]:
    return {
        "budgets": list(
            Budget.objects.order_by("pk").values_list(
                "pk",
                "team_id",
                "name",
                "app",
                "prompt",
                "period",
                "amount",
                "thresholds",
                "hard_limit",
                "recipients",
                "webhook_url",
                "active",
                "updated_at",
            )
        ),
        "states": list(BudgetState.objects.order_by("pk").values_list("pk", "spend", "limit", "exhausted")),
        "alerts": list(BudgetAlert.objects.order_by("pk").values_list("pk", "threshold")),
        "raises": list(BudgetRaise.objects.order_by("pk").values_list("pk", "status", "extra_amount")),
        "requests": list(ApprovalRequest.objects.order_by("pk").values_list("pk", "status")),
        "prices": list(Price.objects.order_by("pk").values_list("pk", "key", "effective_to")),
        "audit_events": AuditEvent.objects.count(),
    }


# The scene: a budget in each team (support's by its product owner, finance's by fin_owner)


@dataclass
class CostScene:
    world: Any
    support_budget: Budget
    finance_budget: Budget
    users: dict[str, Any] = field(default_factory=dict)


def build_costs_scene(world) -> CostScene:
    set_test_prices()
    fin_owner = member(UserFactory(username="fin_owner"), world.finance, Role.PRODUCT_OWNER)
    world.users["fin_owner"] = fin_owner
    support_budget = budget_create(
        actor=world.owner,
        team=world.support,
        name="support-monthly",
        amount=Decimal("100.00"),
        thresholds=[50, 80, 100],
        hard_limit=True,
        recipients=["owner@example.com"],
        webhook_url="https://hooks.example.com/services/T000/B000/secret-part",
    )
    finance_budget = budget_create(
        actor=fin_owner, team=world.finance, name="finance-monthly", amount=Decimal("40.00")
    )
    return CostScene(world=world, support_budget=support_budget, finance_budget=finance_budget)


@pytest.fixture(scope="module")
def _module_costs_scene(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_costs_scene(make_world())
        transaction.set_rollback(True)


@pytest.fixture
def cs(_module_costs_scene, db) -> CostScene:
    for user in _module_costs_scene.world.users.values():
        user_forget_roles(user)
    return _module_costs_scene


# Every operation, described once

ROLES = ["admin", "gov", "eng", "owner", "ann1", "anon"]
READERS = {"admin", "gov", "eng", "owner"}


def expect(default: int, anon: int = 401, **by_role: int) -> dict[str, int]:
    statuses = dict.fromkeys(ROLES, default)
    statuses["anon"] = anon
    statuses.update(by_role)
    return statuses


def _team(team: str) -> str:
    return "support" if team == "own" else "finance"


def _budget(s: CostScene, team: str) -> int:
    return (s.support_budget if team == "own" else s.finance_budget).pk


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: Any
    own: dict[str, int]
    other: dict[str, int]
    scope: str
    token_user: str
    token_status: int
    body: Any = None

    @property
    def writes(self) -> bool:
        return self.method != "get"


ENDPOINTS = [
    Endpoint(
        "costs_summary",
        "get",
        lambda s, t: f"/api/v1/costs/summary?team={_team(t)}&group_by=model",
        own=expect(200, ann1=403),
        other=expect(404, ann1=403),
        scope="costs:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "budgets_list",
        "get",
        lambda s, t: f"/api/v1/budgets/?team={_team(t)}",
        own=expect(200, ann1=403),
        other=expect(404, ann1=403),
        scope="costs:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "budgets_create",
        "post",
        lambda s, t: "/api/v1/budgets/",
        body=lambda s, t: {
            "team": _team(t),
            "name": "fresh",
            "amount": "25.50",
            "period": "week",
            "thresholds": [100, 50],
            "hard_limit": True,
            "recipients": ["po@example.com"],
            "webhook_url": "https://hooks.example.com/x/y",
        },
        own=expect(403, admin=201, owner=201),
        other=expect(404),
        scope="costs:write",
        token_user="owner",
        token_status=201,
    ),
    Endpoint(
        "budgets_retrieve",
        "get",
        lambda s, t: f"/api/v1/budgets/{_budget(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope="costs:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "budgets_update",
        "patch",
        lambda s, t: f"/api/v1/budgets/{_budget(s, t)}/",
        body=lambda s, t: {"amount": "250.00", "thresholds": [80], "recipients": []},
        own=expect(403, admin=200, owner=200, ann1=404),
        other=expect(404),
        scope="costs:write",
        token_user="owner",
        token_status=200,
    ),
    Endpoint(
        "budgets_raise",
        "post",
        lambda s, t: f"/api/v1/budgets/{_budget(s, t)}/raise/",
        body=lambda s, t: {"extra_amount": "50.00", "reason": "launch week"},
        own=expect(403, admin=201, owner=201, ann1=404),
        other=expect(404),
        scope="costs:write",
        token_user="owner",
        token_status=201,
    ),
    Endpoint(
        "prices_list",
        "get",
        lambda s, t: "/api/v1/prices/?key=test-flash" if t == "own" else "/api/v1/prices/?history=1",
        own=expect(200, ann1=403),
        other=expect(200, ann1=403),
        scope="costs:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "prices_create",
        "post",
        lambda s, t: "/api/v1/prices/",
        body=lambda s, t: {
            "key": f"matrix-model-{t}",
            "input_per_1k": "0.00100000",
            "output_per_1k": "0.002",
            "effective_from": "2026-12-01T00:00:00Z",
            "source": "contract",
        },
        own=expect(403, admin=201),
        other=expect(403, admin=201),  # prices belong to no team: administrators of any team keep them
        scope="costs:write",
        token_user="admin",
        token_status=201,
    ),
]


def call(client, endpoint: Endpoint, s: CostScene, team: str = "own"):
    method = getattr(client, endpoint.method)
    if endpoint.body is None:
        return method(endpoint.url(s, team))
    return method(endpoint.url(s, team), endpoint.body(s, team), format="json")


def _client(api_as, world, role):
    return api_as() if role == "anon" else api_as(getattr(world, role))


def _check_reads(endpoint: Endpoint, body: dict, s: CostScene, team: str) -> None:
    """What a successful read shows: the own team only."""
    text = json.dumps(body)
    assert "finance-monthly" not in text
    if endpoint.name == "budgets_list":
        assert [b["name"] for b in body["results"]] == ["support-monthly"]
    elif endpoint.name == "costs_summary":
        assert set(body) == {"since", "until", "currency", "totals", "groups"}
    elif endpoint.name == "prices_list":
        assert body["results"]
        if team == "own":
            assert {p["key"] for p in body["results"]} == {"test-flash"}


@pytest.mark.parametrize("team", ["own", "other"])
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_permission_matrix(endpoint, role, team, cs, api_as):
    expected = (endpoint.own if team == "own" else endpoint.other)[role]
    before = costs_snapshot()

    response = call(_client(api_as, cs.world, role), endpoint, cs, team)

    assert response.status_code == expected, response.content
    after = costs_snapshot()
    if expected >= 400:
        body = response.json()
        assert set(body) == {"error"} and body["error"]["code"], body
        if expected == 401:
            assert body["error"]["code"] == "not_authenticated"
        assert after == before, "a refused call changed something"
    elif not endpoint.writes:
        assert after == before, "a read changed something"
        _check_reads(endpoint, response.json(), cs, team)
    else:
        assert after["audit_events"] > before["audit_events"], "a write was not audited"
        assert after != before


# Tokens: a token acts as its user, within its team and its scopes


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_without_the_scope_is_refused(endpoint, cs, api_as):
    user = getattr(cs.world, endpoint.token_user)
    others = [s for s in Scope.values if s not in (endpoint.scope, Scope.ALL)]
    client = api_as(token=make_token(user, cs.world.support, *others))
    before = costs_snapshot()
    response = call(client, endpoint, cs)
    assert response.status_code == 403, response.content
    assert response.json()["error"]["code"] == "missing_scope"
    assert response.json()["error"]["details"] == {"required_scope": endpoint.scope}
    assert costs_snapshot() == before


@pytest.mark.parametrize("scope", ["required", "all"])
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.name)
def test_a_token_with_the_scope_acts_as_its_user(endpoint, scope, cs, api_as):
    user = getattr(cs.world, endpoint.token_user)
    token = make_token(user, cs.world.support, endpoint.scope if scope == "required" else Scope.ALL)
    response = call(api_as(token=token), endpoint, cs)
    assert response.status_code == endpoint.token_status, response.content


@pytest.mark.parametrize(
    "endpoint",
    [e for e in ENDPOINTS if not e.name.startswith("prices")],
    ids=lambda e: e.name,
)
def test_a_token_stays_in_its_team(endpoint, cs, api_as):
    """eng2 is an engineer in support and finance: their support token sees nothing of finance."""
    token = make_token(cs.world.eng2, cs.world.support, Scope.ALL)
    before = costs_snapshot()
    response = call(api_as(token=token), endpoint, cs, "other")
    assert response.status_code == 404, response.content
    assert costs_snapshot() == before


def test_a_token_lists_the_budgets_of_its_team_only(cs, api_as):
    token = make_token(cs.world.eng2, cs.world.support, Scope.COSTS_READ)
    body = api_as(token=token).get("/api/v1/budgets/").json()
    assert [b["name"] for b in body["results"]] == ["support-monthly"]
    # eng2's session reads both teams
    body = api_as(cs.world.eng2).get("/api/v1/budgets/").json()
    assert sorted(b["name"] for b in body["results"]) == ["finance-monthly", "support-monthly"]


# Bad input: 400 for the shape, 422 for what the services refuse; nothing written either way

BAD_INPUT = [
    # budgets: create
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "colour": "red"},
        400,
        "unknown_fields",
    ),
    ("post", "/api/v1/budgets/", "{not json", 400, "malformed_request"),
    ("post", "/api/v1/budgets/", ["a", "list"], 400, "invalid"),
    ("post", "/api/v1/budgets/", {"team": "support", "amount": "1"}, 400, "invalid"),
    ("post", "/api/v1/budgets/", {"name": "x", "amount": "1"}, 400, "invalid"),
    ("post", "/api/v1/budgets/", {"team": "support", "name": "x", "amount": "-5"}, 422, "invalid_amount"),
    ("post", "/api/v1/budgets/", {"team": "support", "name": "x", "amount": "0"}, 422, "invalid_amount"),
    ("post", "/api/v1/budgets/", {"team": "support", "name": "x", "amount": "1.234"}, 400, "invalid"),
    ("post", "/api/v1/budgets/", {"team": "support", "name": "x", "amount": "lots"}, 400, "invalid"),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "thresholds": [0]},
        422,
        "invalid_thresholds",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "thresholds": [50, 5000]},
        422,
        "invalid_thresholds",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "thresholds": ["half"]},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "thresholds": []},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "thresholds": 50},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "period": "year"},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "recipients": ["nope"]},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "webhook_url": "http://hooks.example.com/x"},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "webhook_url": "ftp://example.com/x"},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "x", "amount": "1", "webhook_url": "not a url"},
        400,
        "invalid",
    ),
    (
        "post",
        "/api/v1/budgets/",
        {"team": "support", "name": "support-monthly", "amount": "1"},
        409,
        "budget_exists",
    ),
    ("post", "/api/v1/budgets/", {"team": "nowhere", "name": "x", "amount": "1"}, 404, "team_not_found"),
    # budgets: update
    ("patch", "/api/v1/budgets/{own}/", {"name": "renamed"}, 400, "unknown_fields"),
    ("patch", "/api/v1/budgets/{own}/", {"team": "finance"}, 400, "unknown_fields"),
    ("patch", "/api/v1/budgets/{own}/", "{not json", 400, "malformed_request"),
    ("patch", "/api/v1/budgets/{own}/", {"amount": "-1"}, 422, "invalid_amount"),
    ("patch", "/api/v1/budgets/{own}/", {"thresholds": [1001]}, 422, "invalid_thresholds"),
    ("patch", "/api/v1/budgets/{own}/", {"thresholds": []}, 400, "invalid"),
    ("patch", "/api/v1/budgets/{own}/", {"webhook_url": "http://hooks.example.com/x"}, 400, "invalid"),
    ("patch", "/api/v1/budgets/{own}/", {"active": "perhaps"}, 400, "invalid"),
    ("patch", "/api/v1/budgets/999999/", {"amount": "1"}, 404, "not_found"),
    # budgets: raise
    (
        "post",
        "/api/v1/budgets/{own}/raise/",
        {"extra_amount": "-1", "reason": "launch"},
        422,
        "invalid_amount",
    ),
    (
        "post",
        "/api/v1/budgets/{own}/raise/",
        {"extra_amount": "0", "reason": "launch"},
        422,
        "invalid_amount",
    ),
    ("post", "/api/v1/budgets/{own}/raise/", {"extra_amount": "1", "reason": ""}, 400, "invalid"),
    ("post", "/api/v1/budgets/{own}/raise/", {"extra_amount": "1"}, 400, "invalid"),
    (
        "post",
        "/api/v1/budgets/{own}/raise/",
        {"extra_amount": "1", "reason": "x", "until": "never"},
        400,
        "unknown_fields",
    ),
    ("post", "/api/v1/budgets/{own}/raise/", "{not json", 400, "malformed_request"),
    # prices (as an administrator)
    ("post", "/api/v1/prices/", {"key": "m", "input_per_1k": "0.1", "colour": "red"}, 400, "unknown_fields"),
    ("post", "/api/v1/prices/", "{not json", 400, "malformed_request"),
    ("post", "/api/v1/prices/", {"key": "m", "input_per_1k": "-0.1"}, 422, "invalid_price"),
    (
        "post",
        "/api/v1/prices/",
        {"key": "m", "input_per_1k": "0.1", "currency": "EUR"},
        422,
        "invalid_currency",
    ),
    ("post", "/api/v1/prices/", {"key": "m", "kind": "per_smile"}, 400, "invalid"),
    ("post", "/api/v1/prices/", {"key": "m", "effective_from": "yesterday"}, 400, "invalid"),
    ("post", "/api/v1/prices/", {"input_per_1k": "0.1"}, 400, "invalid"),
    (
        "post",
        "/api/v1/prices/",
        {"key": "test-flash", "effective_from": "2020-01-01T00:00:00Z"},
        409,
        "price_overlap",
    ),
    # reads
    ("get", "/api/v1/costs/summary?group_by=weekday", None, 400, "invalid"),
    ("get", "/api/v1/costs/summary?from=last-tuesday", None, 400, "invalid"),
    ("get", "/api/v1/costs/summary?from=2026-11-02T10:00:00Z&to=2026-11-02T10:00:00Z", None, 400, "invalid"),
    ("get", "/api/v1/costs/summary?from=2026-11-03T00:00:00Z&to=2026-11-02T00:00:00Z", None, 400, "invalid"),
    ("get", "/api/v1/costs/summary?from=2025-01-01T00:00:00Z&to=2026-02-06T00:00:00Z", None, 400, "invalid"),
    ("get", "/api/v1/costs/summary?colour=red", None, 400, "unknown_fields"),
    ("get", "/api/v1/costs/summary?cursor=abc", None, 400, "unknown_fields"),
    ("get", "/api/v1/costs/summary?team=support,nowhere", None, 404, "team_not_found"),
    ("get", "/api/v1/budgets/?colour=red", None, 400, "unknown_fields"),
    ("get", "/api/v1/prices/?kind=per_smile", None, 400, "invalid"),
    ("get", "/api/v1/prices/?history=maybe", None, 400, "invalid"),
]


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), BAD_INPUT)
def test_bad_input_is_refused_and_writes_nothing(method, url, body, status, code, cs, api_as):
    user = cs.world.admin if url.startswith("/api/v1/prices/") and method == "post" else cs.world.owner
    client = api_as(user)
    url = url.replace("{own}", str(cs.support_budget.pk))
    before = costs_snapshot()
    if body is None:
        response = getattr(client, method)(url)
    elif isinstance(body, str):
        response = getattr(client, method)(url, data=body, content_type="application/json")
    else:
        response = getattr(client, method)(url, body, format="json")
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code, response.json()
    assert costs_snapshot() == before


def test_a_range_of_exactly_400_days_is_accepted(cs, api_as):
    url = "/api/v1/costs/summary?from=2025-10-17T00:00:00Z&to=2026-11-21T00:00:00Z"
    assert api_as(cs.world.owner).get(url).status_code == 200


# Budgets through the API


def _store(team, user, *events) -> None:
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user, team, 'logs:write')}")
    response = client.post(
        "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
    )
    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == len(events), response.content
    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))


def ev(rid, *, at=T0, model="test-flash", tokens=(1000, 1000), latency_ms=1000, status="ok", **extra):
    return {
        "request_id": rid,
        "started_at": at.isoformat(),
        "model": model,
        "input": extra.pop("input", "hi"),
        "app": extra.pop("app", "bot"),
        "tokens_in": tokens[0],
        "tokens_out": tokens[1],
        "latency_ms": latency_ms,
        "status": status,
        **extra,
    }


def test_a_budget_through_the_api_from_creation_to_an_approved_raise(cs, api_as):
    world = cs.world
    owner = api_as(world.owner)
    response = owner.post(
        "/api/v1/budgets/",
        {
            "team": "support",
            "name": "bot",
            "amount": "0.01",
            "app": "bot",
            "thresholds": [100, 50, 80, 50],
            "hard_limit": True,
            "recipients": ["po@example.com"],
            "webhook_url": "https://hooks.example.com/services/T0/B0/very-secret",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["thresholds"] == [50, 80, 100]
    assert created["amount"] == "0.01" and created["currency"] == "USD" and created["period"] == "month"
    assert created["webhook_url"] == "https://hooks.example.com/…"  # a secret: never shown back
    assert "very-secret" not in response.content.decode()
    assert created["current"]["spend"] == "0.00000000" and created["current"]["exhausted"] is False
    budget_id = created["id"]
    assert AuditEvent.objects.filter(action="costs.budget_created", target_id=str(budget_id)).count() == 1

    # spend: 4 calls of 1000 + 1000 tokens at 0.0028 = 0.0112 (the hard limit of 0.01 is spent)
    now = timezone.now()
    _store(world.support, world.eng, *[ev(f"b{i}", at=now - timedelta(minutes=i)) for i in range(4)])
    _store(world.support, world.eng, ev("other-app", at=now, app="other"))  # not this budget's app
    usage_rollup()
    response = owner.patch(f"/api/v1/budgets/{budget_id}/", {"recipients": []}, format="json")
    assert response.status_code == 200, response.content
    current = response.json()["current"]
    assert Decimal(current["spend"]) == Decimal("0.0112")
    assert current["limit"] == "0.01" and current["exhausted"] is True
    assert current["percent"] == pytest.approx(112.0)
    assert Decimal(current["forecast"]) >= Decimal(current["spend"])
    assert response.json()["recipients"] == []

    # the list shows the same state
    (listed,) = [
        b for b in api_as(world.eng).get("/api/v1/budgets/").json()["results"] if b["id"] == budget_id
    ]
    detail = api_as(world.eng).get(f"/api/v1/budgets/{budget_id}/").json()["current"]
    # The forecast extrapolates to "now", which moves between the two requests: compare it loosely.
    assert Decimal(listed["current"].pop("forecast")) == pytest.approx(
        Decimal(detail.pop("forecast")), rel=Decimal("0.001")
    )
    assert listed["current"] == detail
    assert listed["current"]["exhausted"] is True

    # an engineer reads it but does not manage it
    before = costs_snapshot()
    assert (
        api_as(world.eng).patch(f"/api/v1/budgets/{budget_id}/", {"amount": "5"}, format="json").status_code
        == 403
    )
    assert (
        api_as(world.eng)
        .post(f"/api/v1/budgets/{budget_id}/raise/", {"extra_amount": "5", "reason": "x"}, format="json")
        .status_code
        == 403
    )
    assert costs_snapshot() == before

    # the raise: an approval request, decided by governance through the approvals API
    response = owner.post(
        f"/api/v1/budgets/{budget_id}/raise/",
        {"extra_amount": "1.00", "reason": "launch week"},
        format="json",
    )
    assert response.status_code == 201, response.content
    approval = response.json()
    assert approval["status"] == "open" and approval["subject_kind"] == "budget_raise"
    assert approval["team"] == "support" and approval["requested_by"] == "owner"
    assert BudgetRaise.objects.get().status == RaiseStatus.PENDING
    own_decision = owner.post(
        f"/api/v1/approvals/{approval['id']}/decisions/", {"decision": "approve"}, format="json"
    )
    assert own_decision.status_code == 403  # four eyes
    response = api_as(world.gov).post(
        f"/api/v1/approvals/{approval['id']}/decisions/",
        {"decision": "approve", "comment": "ok"},
        format="json",
    )
    assert response.status_code == 201, response.content
    current = owner.get(f"/api/v1/budgets/{budget_id}/").json()["current"]
    assert current["limit"] == "1.01" and current["exhausted"] is False

    # an empty PATCH changes nothing and records nothing
    before = costs_snapshot()
    assert owner.patch(f"/api/v1/budgets/{budget_id}/", {}, format="json").status_code == 200
    assert costs_snapshot() == before


def test_a_budget_is_created_in_the_tokens_team_by_default(cs, api_as):
    world = cs.world
    token = make_token(world.owner, world.support, Scope.COSTS_WRITE)
    response = api_as(token=token).post("/api/v1/budgets/", {"name": "t", "amount": "3"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["team"] == "support"
    # a session must name the team
    response = api_as(world.owner).post("/api/v1/budgets/", {"name": "s", "amount": "3"}, format="json")
    assert response.status_code == 400 and "team" in response.json()["error"]["details"]["fields"]


# The summary's numbers, against the events stored


def _true_percentile(values: list[float], q: int) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-q * len(ordered) // 100) - 1)]


def test_the_summary_matches_the_events_stored(cs, api_as):
    world = cs.world
    # Three days and a half around T0, priced and unpriced models, errors, one PII input; one event
    # outside the range and one in the other team.
    inside = [
        ev(f"e{i}", at=at, latency_ms=lat, status=status, model=model, tokens=tokens, app=app)
        for i, (at, lat, status, model, tokens, app) in enumerate(
            [
                (T0 - timedelta(hours=20), 120, "ok", "test-flash", (1000, 1000), "bot"),
                (T0 - timedelta(hours=19, minutes=5), 250, "ok", "test-flash", (2000, 500), "bot"),
                (T0, 90, "error", "test-flash", (300, 0), "bot"),
                (T0 + timedelta(minutes=10), 4000, "ok", "test-lite", (5000, 3000), "mail"),
                (T0 + timedelta(hours=5), 800, "ok", "my-own-model", (700, 700), "mail"),
                (T0 + timedelta(hours=30), 1500, "ok", "test-flash", (100, 900), "bot"),
                (T0 + timedelta(hours=40), 60, "timeout", "test-lite", (10, 0), "bot"),
                (T0 + timedelta(days=1, hours=20), 333, "ok", "test-flash", (4000, 4000), "bot"),
            ]
        )
    ]
    inside += [ev(f"f{i}", at=T0 + timedelta(hours=i), latency_ms=100 + 37 * i) for i in range(20)]
    inside.append(ev("pii", at=T0 + timedelta(hours=2), input="Write to ana.garcia@example.com please"))
    outside = ev("late", at=T0 + timedelta(days=3), latency_ms=9000)
    _store(world.support, world.eng, *inside, outside)
    _store(world.finance, world.fin_eng, ev("finance-1", at=T0, tokens=(9000, 9000)))
    assert usage_rollup() > 0

    since, until = T0 - timedelta(days=1), T0 + timedelta(days=2)
    query = "from=2026-11-01T09:30:00Z&to=2026-11-04T09:30:00Z"
    response = api_as(world.owner).get(f"/api/v1/costs/summary?{query}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["currency"] == "USD" and body["groups"] == []
    assert body["since"] == "2026-11-01T09:30:00Z" and body["until"] == "2026-11-04T09:30:00Z"

    stored = list(
        LogEvent.objects.filter(team=world.support, started_at__gte=since, started_at__lt=until).values(
            "cost", "status", "tokens_in", "tokens_out", "latency_ms", "has_pii"
        )
    )
    assert len(stored) == len(inside)
    totals = body["totals"]
    assert isinstance(totals["spend"], str) and isinstance(totals["cost_per_1k_tokens"], str)
    spend = sum((e["cost"] for e in stored if e["cost"] is not None), Decimal(0))
    assert Decimal(totals["spend"]) == spend
    tokens = sum(e["tokens_in"] + e["tokens_out"] for e in stored)
    assert Decimal(totals["cost_per_1k_tokens"]) == (spend * 1000 / tokens).quantize(Decimal("0.00000001"))
    assert totals["requests"] == len(inside)
    assert totals["errors"] == 2 and totals["error_rate"] == pytest.approx(2 / len(inside))
    assert totals["tokens_in"] == sum(e["tokens_in"] for e in stored)
    assert totals["tokens_out"] == sum(e["tokens_out"] for e in stored)
    assert totals["unpriced_requests"] == 1
    assert sum(e["has_pii"] for e in stored) == 1
    assert totals["pii_rate"] == pytest.approx(1 / len(inside))
    latencies = [e["latency_ms"] for e in stored]
    for q in (50, 95, 99):
        true = _true_percentile(latencies, q)
        assert true <= totals[f"latency_p{q}_ms"] <= true * 1.05 + 0.1, (q, true, totals)
    # one priced call, checked by hand: 1000 in + 1000 out of test-flash = 0.0003 + 0.0025
    assert LogEvent.objects.get(request_id="e0").cost == Decimal("0.0028")

    # per model: the same figures, split; the unpriced model is flagged, never zero-cost silently
    groups = api_as(world.owner).get(f"/api/v1/costs/summary?{query}&group_by=model").json()["groups"]
    by_model = {g["key"]: g for g in groups}
    assert set(by_model) == {"test-flash", "test-lite", "my-own-model"}
    assert sum(g["requests"] for g in groups) == len(inside)
    assert sum(Decimal(g["spend"]) for g in groups) == spend
    assert by_model["my-own-model"]["unpriced_requests"] == 1
    assert Decimal(by_model["my-own-model"]["spend"]) == 0
    assert [Decimal(g["spend"]) for g in groups] == sorted(
        (Decimal(g["spend"]) for g in groups), reverse=True
    )

    # per day: the partial first and last days and the whole days in between
    days = api_as(world.owner).get(f"/api/v1/costs/summary?{query}&group_by=day").json()["groups"]
    assert [d["key"] for d in days] == ["2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"]
    per_day: dict[str, int] = {}
    for at in LogEvent.objects.filter(
        team=world.support, started_at__gte=since, started_at__lt=until
    ).values_list("started_at", flat=True):
        per_day[at.astimezone(UTC).date().isoformat()] = (
            per_day.get(at.astimezone(UTC).date().isoformat(), 0) + 1
        )
    assert {d["key"]: d["requests"] for d in days} == per_day

    # filters: app, model, prompt
    bot = api_as(world.owner).get(f"/api/v1/costs/summary?{query}&app=mail").json()["totals"]
    assert bot["requests"] == 2 and bot["unpriced_requests"] == 1
    lite = api_as(world.owner).get(f"/api/v1/costs/summary?{query}&model=test-lite").json()
    assert lite["totals"]["requests"] == 2
    assert (
        api_as(world.owner).get(f"/api/v1/costs/summary?{query}&prompt=none").json()["totals"]["requests"]
        == 0
    )

    # eng2 reads both teams: repeated or comma-separated `team`, and group_by=team
    for teams in ("team=support&team=finance", "team=support,finance", "team=finance,support,finance"):
        both = api_as(world.eng2).get(f"/api/v1/costs/summary?{query}&{teams}&group_by=team").json()
        assert both["totals"]["requests"] == len(inside) + 1
        assert {g["key"] for g in both["groups"]} == {"support", "finance"}
    only = api_as(world.eng2).get(f"/api/v1/costs/summary?{query}&team=finance").json()["totals"]
    assert only["requests"] == 1 and Decimal(only["spend"]) == Decimal("0.0252")


def test_the_summary_defaults_to_the_last_30_days(cs, api_as):
    world = cs.world
    now = timezone.now()
    _store(
        world.support,
        world.eng,
        ev("recent", at=now - timedelta(days=2)),
        ev("old", at=now - timedelta(days=45)),
    )
    usage_rollup()
    body = api_as(world.owner).get("/api/v1/costs/summary").json()
    assert body["totals"]["requests"] == 1
    since = datetime.fromisoformat(body["since"])
    until = datetime.fromisoformat(body["until"])
    assert until - since == timedelta(days=30) and abs(until - now) < timedelta(minutes=1)
    # `to` alone: 30 days before it
    to = (now - timedelta(days=40)).replace(microsecond=0)
    body = api_as(world.owner).get("/api/v1/costs/summary", {"to": to.isoformat()}).json()
    assert datetime.fromisoformat(body["since"]) == to - timedelta(days=30)
    assert body["totals"]["requests"] == 1
    # no events: zeros and nulls, never made-up numbers
    empty = api_as(world.owner).get("/api/v1/costs/summary?to=2020-01-01T00:00:00Z").json()["totals"]
    assert empty["requests"] == 0 and empty["spend"] == "0.00000000"
    assert (
        empty["error_rate"] is None
        and empty["cost_per_1k_tokens"] is None
        and empty["latency_p95_ms"] is None
    )


# Product owners see their own teams only


def test_product_owners_see_their_own_teams_only(cs, api_as):
    world = cs.world
    fin_owner, support, finance = world.fin_owner, cs.support_budget, cs.finance_budget
    _store(world.support, world.eng, ev("s1", at=T0), ev("s2", at=T0))
    _store(world.finance, world.fin_eng, ev("f1", at=T0, tokens=(9000, 9000)))
    usage_rollup()
    query = "from=2026-11-01T00:00:00Z&to=2026-11-03T00:00:00Z&group_by=team"

    for user, own, own_budget, other, other_budget, requests in (
        (world.owner, "support", support, "finance", finance, 2),
        (fin_owner, "finance", finance, "support", support, 1),
    ):
        client = api_as(user)
        body = client.get(f"/api/v1/costs/summary?{query}").json()
        assert body["totals"]["requests"] == requests
        assert [g["key"] for g in body["groups"]] == [own]
        assert client.get(f"/api/v1/costs/summary?{query}&team={other}").status_code == 404
        assert client.get(f"/api/v1/costs/summary?{query}&team={own},{other}").status_code == 404
        assert [b["id"] for b in client.get("/api/v1/budgets/").json()["results"]] == [own_budget.pk]
        assert client.get(f"/api/v1/budgets/?team={other}").status_code == 404
        assert client.get(f"/api/v1/budgets/{other_budget.pk}/").status_code == 404
        before = costs_snapshot()
        assert (
            client.patch(f"/api/v1/budgets/{other_budget.pk}/", {"amount": "1"}, format="json").status_code
            == 404
        )
        assert (
            client.post(
                f"/api/v1/budgets/{other_budget.pk}/raise/",
                {"extra_amount": "1", "reason": "x"},
                format="json",
            ).status_code
            == 404
        )
        assert (
            client.post(
                "/api/v1/budgets/", {"team": other, "name": "n", "amount": "1"}, format="json"
            ).status_code
            == 404
        )
        assert costs_snapshot() == before


# Prices


def test_prices_current_by_default_history_on_request_and_set_by_administrators(cs, api_as):
    world = cs.world
    price_set(
        actor=world.admin, key="m", effective_from=T0 - timedelta(days=60), input_per_1k=Decimal("0.001")
    )
    price_set(actor=world.admin, key="m", effective_from=T0, input_per_1k=Decimal("0.002"))
    price_set(
        actor=world.admin, key="gpu-a100", kind="accelerator_hour", effective_from=T0, hourly=Decimal("3.5")
    )
    eng = api_as(world.eng)

    current = eng.get("/api/v1/prices/?key=m").json()["results"]
    assert [(p["input_per_1k"], p["in_effect"], p["effective_to"]) for p in current] == [
        ("0.00200000", True, None)
    ]
    history = eng.get("/api/v1/prices/?key=m&history=1").json()["results"]
    assert [(p["input_per_1k"], p["in_effect"]) for p in history] == [
        ("0.00200000", True),
        ("0.00100000", False),
    ]
    assert history[1]["effective_to"] == "2026-11-02T09:30:00Z"
    assert history[0]["created_by"] == "admin" and history[0]["currency"] == "USD"
    hourly = eng.get("/api/v1/prices/?kind=accelerator_hour").json()["results"]
    # beside the accelerator prices that apps/tuning's migration 0002 seeds (when nothing flushed them)
    assert ("gpu-a100", "3.500000") in [(p["key"], p["hourly"]) for p in hourly]
    assert {p["kind"] for p in hourly} == {"accelerator_hour"}
    tokens = eng.get("/api/v1/prices/?kind=tokens").json()["results"]
    assert {"test-flash", "test-lite", "m"} <= {p["key"] for p in tokens}
    assert "gpu-a100" not in {p["key"] for p in tokens}

    # a price from a later date ends the current one; both are listed until the first ends
    admin = api_as(world.admin)
    response = admin.post(
        "/api/v1/prices/",
        {
            "key": "m",
            "input_per_1k": "0.003",
            "output_per_1k": "0.004",
            "effective_from": "2027-01-01T00:00:00Z",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (
        created["in_effect"] is False
        and created["kind"] == "tokens"
        and created["output_per_1k"] == "0.00400000"
    )
    listed = eng.get("/api/v1/prices/?key=m").json()["results"]
    assert [(p["input_per_1k"], p["effective_to"]) for p in listed] == [
        ("0.00300000", None),
        ("0.00200000", "2027-01-01T00:00:00Z"),
    ]
    assert AuditEvent.objects.filter(action="costs.price_set", changes__key="m").count() == 3

    # overlap: a price must start after the latest one
    before = costs_snapshot()
    response = admin.post(
        "/api/v1/prices/",
        {"key": "m", "input_per_1k": "0.1", "effective_from": "2026-12-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "price_overlap"
    assert costs_snapshot() == before


def test_the_schema_documents_the_costs_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = {
        op["operationId"]: (path, method)
        for path, methods in schema["paths"].items()
        for method, op in methods.items()
    }
    assert operations["costs_summary"] == ("/api/v1/costs/summary", "get")
    assert operations["budgets_list"] == ("/api/v1/budgets/", "get")
    assert operations["budgets_create"] == ("/api/v1/budgets/", "post")
    assert operations["budgets_retrieve"] == ("/api/v1/budgets/{budget_id}/", "get")
    assert operations["budgets_partial_update"] == ("/api/v1/budgets/{budget_id}/", "patch")
    assert operations["budgets_raise"] == ("/api/v1/budgets/{budget_id}/raise/", "post")
    assert operations["prices_list"] == ("/api/v1/prices/", "get")
    assert operations["prices_create"] == ("/api/v1/prices/", "post")
    totals = schema["components"]["schemas"]["CostTotalsOutput"]["properties"]
    assert totals["spend"]["type"] == "string"  # decimals as strings


def test_the_budget_list_reads_states_in_one_query_whatever_the_number_of_budgets(world, api_as):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.costs.services import budget_create

    client = api_as(world.owner)

    def queries_for_list() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/budgets/").status_code == 200
        return len(captured)

    budget_create(actor=world.owner, team=world.support, name="b0", amount=Decimal("1"))
    one = queries_for_list()
    for i in range(1, 6):
        budget_create(actor=world.owner, team=world.support, name=f"b{i}", amount=Decimal("1"))
    assert queries_for_list() == one
