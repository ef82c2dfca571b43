from django.urls import path

from apps.costs.api import (
    BudgetDetailApi,
    BudgetListCreateApi,
    BudgetRaiseApi,
    CostSummaryApi,
    PriceListCreateApi,
)

urlpatterns = [
    path("costs/summary", CostSummaryApi.as_view(), name="api-costs-summary"),
    path("budgets/", BudgetListCreateApi.as_view(), name="api-budget-list"),
    path("budgets/<int:budget_id>/", BudgetDetailApi.as_view(), name="api-budget-detail"),
    path("budgets/<int:budget_id>/raise/", BudgetRaiseApi.as_view(), name="api-budget-raise"),
    path("prices/", PriceListCreateApi.as_view(), name="api-price-list"),
]
