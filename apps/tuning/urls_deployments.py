from django.urls import path

from apps.tuning import views_deployments as views

app_name = "deployments"
urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.deployment_new, name="new"),
    path("endpoints/new/", views.endpoint_new, name="endpoint_new"),
    path("endpoints/<int:endpoint_id>/", views.endpoint_detail, name="endpoint"),
    path("<int:deployment_id>/", views.deployment_detail, name="detail"),
    path("<int:deployment_id>/submit/", views.submit, name="submit"),
    path("<int:deployment_id>/promote/", views.promote, name="promote"),
    path("<int:deployment_id>/rollback/", views.rollback, name="rollback"),
]
