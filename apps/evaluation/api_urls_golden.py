from django.urls import path

from apps.evaluation.api_golden import (
    GoldenSetDetailApi,
    GoldenSetExportApi,
    GoldenSetListCreateApi,
    GoldenSetVersionCreateApi,
)

urlpatterns = [
    path("golden-sets/", GoldenSetListCreateApi.as_view(), name="api-golden-set-list"),
    path("golden-sets/<int:golden_set_id>/", GoldenSetDetailApi.as_view(), name="api-golden-set-detail"),
    path(
        "golden-sets/<int:golden_set_id>/versions/",
        GoldenSetVersionCreateApi.as_view(),
        name="api-golden-set-version-create",
    ),
    path(
        "golden-sets/<int:golden_set_id>/export", GoldenSetExportApi.as_view(), name="api-golden-set-export"
    ),
]
