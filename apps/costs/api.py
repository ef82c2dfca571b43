"""API v1 for costs: the summary (from the rollups), budgets with their current state, raises, prices.

Reads need `costs:read`, writes `costs:write`. Who may do what in a team is decided by the selectors
(cost readers: admins, governance, engineers, product owners) and the services (budgets are managed by
the team's product owners and administrators; price tables by administrators).
"""

from datetime import UTC, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.roles import Scope
from apps.accounts.selectors import active_token, team_get_by_slug
from apps.common.api import (
    PAGINATION_PARAMETERS,
    ApiView,
    FilterSerializer,
    NamedChoiceField,
    StrictSerializer,
    errors,
    paginated_response,
    paginated_schema,
    validated,
)
from apps.common.exceptions import NotFound, PermissionDenied
from apps.common.pagination import CursorPagination
from apps.common.permissions import HasScope
from apps.costs.models import Budget, Period, Price, PriceKind
from apps.costs.selectors import (
    COST_READERS,
    GROUP_BY,
    CostFilters,
    budget_current,
    budget_get,
    budget_list,
    budgets_current,
    costs_can_read,
    costs_summary,
    price_list,
)
from apps.costs.services import budget_create, budget_raise_request, budget_update, price_set
from apps.workflows.api import ApprovalRequestOutputSerializer

SUMMARY_DEFAULT_DAYS = 30
SUMMARY_MAX_DAYS = 400
MAX_TEAMS = 50


def _require_cost_reader(user) -> None:
    if not costs_can_read(user=user):
        raise PermissionDenied("Your roles do not include reading costs.")


def _money(decimal_places: int = 8, **kwargs: Any) -> serializers.DecimalField:
    """A decimal as a string (never a float), at the precision it is stored with."""
    return serializers.DecimalField(
        max_digits=None, decimal_places=decimal_places, coerce_to_string=True, **kwargs
    )


# Summary


class CostTotalsOutputSerializer(serializers.Serializer):
    spend = _money(help_text="Cost of the priced requests.")
    requests = serializers.IntegerField()
    errors = serializers.IntegerField()
    error_rate = serializers.FloatField(
        allow_null=True, help_text="errors / requests (null without requests)."
    )
    tokens_in = serializers.IntegerField()
    tokens_out = serializers.IntegerField()
    cost_per_1k_tokens = _money(allow_null=True, help_text="spend × 1000 / (tokens in + out).")
    unpriced_requests = serializers.IntegerField(
        help_text="Requests of models without a price: never zero-cost."
    )
    pii_rate = serializers.FloatField(allow_null=True, help_text="Share of requests in which PII was found.")
    latency_p50_ms = serializers.FloatField(allow_null=True)
    latency_p95_ms = serializers.FloatField(allow_null=True)
    latency_p99_ms = serializers.FloatField(
        allow_null=True,
        help_text="Percentiles read from merged histograms: the upper bound of a bucket 5 % wide.",
    )


class CostGroupOutputSerializer(CostTotalsOutputSerializer):
    key = serializers.CharField(
        allow_null=True, help_text="The group's value as text (a day, an hour, a team slug, a model…)."
    )


class CostSummaryApi(ApiView):
    """Spend, requests, errors, tokens and latency percentiles of the caller's teams over [from, to), read
    from the hourly and daily rollups (never from the raw events). Default range: the last 30 days."""

    permission_classes = [HasScope]
    required_scope = Scope.COSTS_READ

    class FilterSerializer(StrictSerializer):
        team = serializers.ListField(
            child=serializers.CharField(max_length=63 * MAX_TEAMS),
            required=False,
            help_text="Team slug; repeat it or separate slugs with commas. Default: every team you read costs of.",
        )
        locals()["from"] = serializers.DateTimeField(
            required=False, help_text="ISO 8601 start (inclusive). Default: 30 days before `to`."
        )
        locals()["to"] = serializers.DateTimeField(
            required=False, help_text="ISO 8601 end (exclusive). Default: now."
        )
        group_by = NamedChoiceField(
            choices=[(g, g) for g in GROUP_BY], enum_name="CostGroupBy", required=False, allow_blank=True
        )
        app = serializers.CharField(required=False, allow_blank=True, max_length=100)
        model = serializers.CharField(required=False, allow_blank=True, max_length=200)
        prompt = serializers.CharField(required=False, allow_blank=True, max_length=100)

        def validate_team(self, value: list[str]) -> list[str]:
            slugs = list(dict.fromkeys(s.strip() for item in value for s in item.split(",") if s.strip()))
            if len(slugs) > MAX_TEAMS:
                raise serializers.ValidationError(f"At most {MAX_TEAMS} teams.")
            return slugs

        def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
            until = attrs.get("to") or timezone.now()
            since = attrs.get("from") or until - timedelta(days=SUMMARY_DEFAULT_DAYS)
            if since >= until:
                raise serializers.ValidationError({"from": ["`from` must be before `to`."]})
            if until - since > timedelta(days=SUMMARY_MAX_DAYS):
                raise serializers.ValidationError(
                    {"from": [f"The range is at most {SUMMARY_MAX_DAYS} days."]}
                )
            # Rollup buckets are UTC hours and days: compare in UTC whatever the console's time zone.
            attrs["from"], attrs["to"] = since.astimezone(UTC), until.astimezone(UTC)
            return attrs

    class OutputSerializer(serializers.Serializer):
        since = serializers.DateTimeField()
        until = serializers.DateTimeField()
        currency = serializers.CharField()
        totals = CostTotalsOutputSerializer()
        groups = CostGroupOutputSerializer(many=True, help_text="Per `group_by` value (empty without it).")

    @extend_schema(
        operation_id="costs_summary",
        parameters=[FilterSerializer],
        responses={200: OutputSerializer} | errors(400, 401, 403, 404),
    )
    def get(self, request: Request) -> Response:
        data = validated(self.FilterSerializer, request.query_params)
        _require_cost_reader(request.user)
        team_ids = []
        for slug in data.get("team", []):
            team = team_get_by_slug(user=request.user, slug=slug, roles=COST_READERS)
            if team is None:
                raise NotFound(f"No team {slug!r}.", code="team_not_found")
            team_ids.append(team.pk)
        filters = CostFilters(
            since=data["from"],
            until=data["to"],
            team_ids=tuple(team_ids),
            app=data.get("app", ""),
            model=data.get("model", ""),
            prompt=data.get("prompt", ""),
        )
        summary = costs_summary(user=request.user, filters=filters, group_by=data.get("group_by", ""))
        groups = [
            {**group, "key": None if group["key"] is None else str(group["key"])}
            for group in summary.get("groups", [])
        ]
        body = {**summary, "currency": settings.COSTS_CURRENCY, "groups": groups}
        return Response(self.OutputSerializer(body).data)


# Budgets


class BudgetCurrentOutputSerializer(serializers.Serializer):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    spend = _money()
    limit = _money(2, help_text="The amount plus the raises approved for this period.")
    percent = serializers.FloatField(allow_null=True)
    forecast = _money(help_text="The spend at period end at the current run rate.")
    exhausted = serializers.BooleanField(help_text="A hard budget spent: resolve answers 429.")


def _masked_url(url: str) -> str:
    if not url:
        return ""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


class BudgetListOutputSerializer(serializers.ListSerializer):
    """Reads every budget's current state in one query (budgets_current) instead of one per budget."""

    def to_representation(self, data: Any) -> list:
        budgets = list(data.all() if hasattr(data, "all") else data)
        self.child.context["current"] = budgets_current(budgets=budgets)
        return super().to_representation(budgets)


class BudgetOutputSerializer(serializers.Serializer):
    class Meta:
        list_serializer_class = BudgetListOutputSerializer

    id = serializers.IntegerField()
    team = serializers.CharField(source="team.slug")
    name = serializers.CharField()
    app = serializers.CharField()
    prompt = serializers.CharField()
    period = NamedChoiceField(choices=Period.choices, enum_name="BudgetPeriod")
    amount = _money(2)
    currency = serializers.SerializerMethodField()
    thresholds = serializers.ListField(
        child=serializers.IntegerField(), help_text="Percentages of the limit."
    )
    hard_limit = serializers.BooleanField()
    recipients = serializers.ListField(child=serializers.EmailField())
    webhook_url = serializers.SerializerMethodField(
        help_text="Masked (scheme and host): a webhook URL is a secret. Set it with POST or PATCH."
    )
    active = serializers.BooleanField()
    created_by = serializers.CharField(source="created_by.username")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    current = serializers.SerializerMethodField()

    def get_currency(self, budget: Budget) -> str:
        return settings.COSTS_CURRENCY

    def get_webhook_url(self, budget: Budget) -> str:
        return _masked_url(budget.webhook_url)

    @extend_schema_field(BudgetCurrentOutputSerializer)
    def get_current(self, budget: Budget) -> dict[str, Any]:
        current = self.context.get("current", {}).get(budget.pk) or budget_current(budget=budget)
        return BudgetCurrentOutputSerializer(current).data


class HttpsUrlField(serializers.URLField):
    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if value and urlsplit(value).scheme != "https":
            raise serializers.ValidationError("Only https:// URLs.", code="invalid")
        return value


class BudgetSettingsSerializer(StrictSerializer):
    """The fields a budget's managers set, on create and on update."""

    amount = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Per period; positive.")
    period = NamedChoiceField(choices=Period.choices, enum_name="BudgetPeriod", required=False)
    thresholds = serializers.ListField(
        child=serializers.IntegerField(),
        required=False,
        allow_empty=False,
        max_length=20,
        help_text="Alert thresholds, percentages of the limit between 1 and 1000 (default 50, 80, 100).",
    )
    hard_limit = serializers.BooleanField(
        required=False, help_text="When spent, `resolve` answers 429 `budget_exhausted` for the team."
    )
    recipients = serializers.ListField(
        child=serializers.EmailField(max_length=254),
        required=False,
        max_length=50,
        help_text="E-mail addresses.",
    )
    webhook_url = HttpsUrlField(
        required=False, allow_blank=True, max_length=200, help_text="An https incoming-webhook URL."
    )


class BudgetCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")


def _budget_for(request: Request, budget_id: int) -> Budget:
    budget = budget_get(user=request.user, budget_id=budget_id)
    if budget is None:
        raise NotFound("No such budget.")
    return budget


class BudgetListCreateApi(ApiView):
    """GET lists the budgets of the caller's teams with this period's state; POST creates one (the team's
    product owners and administrators; in the token's team by default)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.COSTS_READ, "POST": Scope.COSTS_WRITE}

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, allow_blank=True, max_length=63, help_text="Team slug.")

    class InputSerializer(BudgetSettingsSerializer):
        team = serializers.CharField(
            required=False, max_length=63, help_text="Team slug; defaults to the token's team."
        )
        name = serializers.CharField(max_length=100)
        app = serializers.CharField(
            required=False, default="", allow_blank=True, max_length=100, help_text="Only this app's spend."
        )
        prompt = serializers.CharField(
            required=False,
            default="",
            allow_blank=True,
            max_length=100,
            help_text="Only this prompt's spend.",
        )

    @extend_schema(
        operation_id="budgets_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedBudgetList", BudgetOutputSerializer)}
        | errors(400, 401, 403, 404),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        _require_cost_reader(request.user)
        slug = filters.get("team") or ""
        team = team_get_by_slug(user=request.user, slug=slug, roles=COST_READERS) if slug else None
        if slug and team is None:
            raise NotFound(f"No team {slug!r}.", code="team_not_found")
        queryset = budget_list(user=request.user, team_id=team.pk if team else None)
        return paginated_response(
            request=request,
            view=self,
            queryset=queryset.select_related("team", "created_by"),
            serializer_class=BudgetOutputSerializer,
            pagination_class=BudgetCursorPagination,
        )

    @extend_schema(
        operation_id="budgets_create",
        request=InputSerializer,
        responses={201: BudgetOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        team = _team_for_create(request, data.pop("team", ""))
        budget = budget_create(actor=request.user, team=team, **data)
        return Response(BudgetOutputSerializer(budget).data, status=201)


def _team_for_create(request: Request, slug: str) -> Team:
    if slug:
        team = team_get_by_slug(user=request.user, slug=slug)
        if team is None:
            raise NotFound(f"No team {slug!r}.", code="team_not_found")
        return team
    token = active_token(request.user)
    if token is not None:
        return token.team
    raise serializers.ValidationError({"team": ["Name the team (its slug)."]})


class BudgetDetailApi(ApiView):
    """GET a budget with this period's state; PATCH changes its settings (its managers only)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.COSTS_READ, "PATCH": Scope.COSTS_WRITE}

    class InputSerializer(BudgetSettingsSerializer):
        amount = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
        active = serializers.BooleanField(
            required=False, help_text="An inactive budget neither alerts nor blocks."
        )

    @extend_schema(
        operation_id="budgets_retrieve", responses={200: BudgetOutputSerializer} | errors(401, 403, 404)
    )
    def get(self, request: Request, budget_id: int) -> Response:
        return Response(BudgetOutputSerializer(_budget_for(request, budget_id)).data)

    @extend_schema(
        operation_id="budgets_partial_update",
        request=InputSerializer,
        responses={200: BudgetOutputSerializer} | errors(400, 401, 403, 404, 413, 422),
    )
    def patch(self, request: Request, budget_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        budget = _budget_for(request, budget_id)
        if data:
            budget = budget_update(actor=request.user, budget=budget, **data)
        return Response(BudgetOutputSerializer(budget).data)


class BudgetRaiseApi(ApiView):
    """Ask for a temporary raise of this period's limit: opens an approval request (201), decided with
    POST /api/v1/approvals/{id}/decisions/. The team's product owners and administrators only."""

    permission_classes = [HasScope]
    required_scope = Scope.COSTS_WRITE

    class InputSerializer(StrictSerializer):
        extra_amount = serializers.DecimalField(max_digits=14, decimal_places=2, help_text="Positive.")
        reason = serializers.CharField(max_length=500)

    @extend_schema(
        operation_id="budgets_raise",
        request=InputSerializer,
        responses={201: ApprovalRequestOutputSerializer} | errors(400, 401, 403, 404, 409, 413, 422),
    )
    def post(self, request: Request, budget_id: int) -> Response:
        data = validated(self.InputSerializer, request.data)
        budget = _budget_for(request, budget_id)
        approval = budget_raise_request(actor=request.user, budget=budget, **data)
        return Response(ApprovalRequestOutputSerializer(approval).data, status=201)


# Prices


class PriceOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = NamedChoiceField(choices=PriceKind.choices, enum_name="PriceKind")
    key = serializers.CharField(help_text="The model (or adapter, endpoint, accelerator) as logged.")
    currency = serializers.CharField()
    input_per_1k = _money()
    output_per_1k = _money()
    hourly = _money(6)
    effective_from = serializers.DateTimeField()
    effective_to = serializers.DateTimeField(allow_null=True)
    in_effect = serializers.SerializerMethodField()
    source = serializers.CharField()
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()

    def get_in_effect(self, price: Price) -> bool:
        now = timezone.now()
        return price.effective_from <= now and (price.effective_to is None or now < price.effective_to)


class PriceCursorPagination(CursorPagination):
    ordering = ("key", "kind", "-effective_from")


class PriceListCreateApi(ApiView):
    """GET lists the price rows not yet ended (in effect now or scheduled; `history=1` adds the ended ones);
    POST adds a price from `effective_from` on, ending the one in effect then (administrators)."""

    permission_classes = [HasScope]
    required_scope = {"GET": Scope.COSTS_READ, "POST": Scope.COSTS_WRITE}

    class FilterSerializer(FilterSerializer):
        kind = NamedChoiceField(choices=PriceKind.choices, enum_name="PriceKind", required=False)
        key = serializers.CharField(required=False, allow_blank=True, max_length=200)
        history = serializers.BooleanField(required=False, default=False, help_text="Include ended prices.")

    class InputSerializer(StrictSerializer):
        kind = NamedChoiceField(choices=PriceKind.choices, enum_name="PriceKind", required=False)
        key = serializers.CharField(max_length=200)
        effective_from = serializers.DateTimeField(required=False, help_text="Default: now.")
        input_per_1k = serializers.DecimalField(max_digits=14, decimal_places=8, required=False)
        output_per_1k = serializers.DecimalField(max_digits=14, decimal_places=8, required=False)
        hourly = serializers.DecimalField(max_digits=14, decimal_places=6, required=False)
        currency = serializers.CharField(required=False, min_length=3, max_length=3)
        source = serializers.CharField(required=False, allow_blank=True, max_length=300)

    @extend_schema(
        operation_id="prices_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedPriceList", PriceOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        filters = validated(self.FilterSerializer, request.query_params)
        _require_cost_reader(request.user)
        queryset = price_list(
            user=request.user,
            kind=filters.get("kind", ""),
            key=filters.get("key", ""),
            history=filters["history"],
        )
        return paginated_response(
            request=request,
            view=self,
            queryset=queryset,
            serializer_class=PriceOutputSerializer,
            pagination_class=PriceCursorPagination,
        )

    @extend_schema(
        operation_id="prices_create",
        request=InputSerializer,
        responses={201: PriceOutputSerializer} | errors(400, 401, 403, 409, 413, 422),
    )
    def post(self, request: Request) -> Response:
        data = validated(self.InputSerializer, request.data)
        data.setdefault("effective_from", timezone.now())
        price = price_set(actor=request.user, **data)
        return Response(PriceOutputSerializer(price).data, status=201)
