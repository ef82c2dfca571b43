from django.urls import path

from apps.logs.api import LogBatchApi, LogEventDetailApi, LogListApi

urlpatterns = [
    path("logs/batch", LogBatchApi.as_view(), name="api-logs-batch"),
    path("logs/", LogListApi.as_view(), name="api-logs-list"),
    path("logs/<int:event_id>/", LogEventDetailApi.as_view(), name="api-logs-detail"),
]
