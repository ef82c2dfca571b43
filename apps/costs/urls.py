from django.urls import path

from apps.costs import views

app_name = "costs"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("csv/<slug:chart>.csv", views.chart_csv, name="csv"),
    path("budgets/", views.budgets, name="budgets"),
    path("budgets/new/", views.budget_new, name="budget_new"),
    path("budgets/<int:budget_id>/", views.budget_detail, name="budget"),
    path("budgets/<int:budget_id>/edit/", views.budget_edit, name="budget_edit"),
    path("budgets/<int:budget_id>/raise/", views.budget_raise, name="budget_raise"),
    path("prices/", views.prices, name="prices"),
]
