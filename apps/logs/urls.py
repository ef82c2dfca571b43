from django.urls import path

from apps.logs import views

app_name = "logs"
urlpatterns = [
    path("", views.explorer, name="explorer"),
    path("summary/", views.summary, name="summary"),
    path("<int:event_id>/", views.event_detail, name="event"),
    path("status/", views.pipeline, name="status"),
    path("status/<slug:team>/retry/", views.quarantine_retry, name="retry"),
    path("status/<slug:team>/policy/", views.policy_set, name="policy"),
]
