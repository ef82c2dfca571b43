from django.urls import path

from apps.evaluation import views_runs

app_name = "evaluation_runs"
urlpatterns = [
    path("<int:run_id>/", views_runs.run_detail, name="run"),
    path("<int:run_id>/regression/", views_runs.run_regression, name="regression"),
    path("start/<int:version_id>/", views_runs.run_start, name="start"),
]
