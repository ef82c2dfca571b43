from django.urls import path

from apps.tuning.api import (
    TuningRequestCancelApi,
    TuningRequestDetailApi,
    TuningRequestListCreateApi,
    TuningRequestSubmitApi,
)

urlpatterns = [
    path("tuning-requests/", TuningRequestListCreateApi.as_view(), name="api-tuning-list"),
    path("tuning-requests/<int:request_id>/", TuningRequestDetailApi.as_view(), name="api-tuning-detail"),
    path(
        "tuning-requests/<int:request_id>/submit/", TuningRequestSubmitApi.as_view(), name="api-tuning-submit"
    ),
    path(
        "tuning-requests/<int:request_id>/cancel/", TuningRequestCancelApi.as_view(), name="api-tuning-cancel"
    ),
]
