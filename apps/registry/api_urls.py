from django.urls import path

from apps.registry.api import (
    AdapterDetailApi,
    AdapterListCreateApi,
    AdapterVersionDetailApi,
    AdapterVersionListCreateApi,
    AliasMoveApi,
    BaseModelDetailApi,
    BaseModelListCreateApi,
)

urlpatterns = [
    path("models/", BaseModelListCreateApi.as_view(), name="api-model-list"),
    path("models/<int:model_id>/", BaseModelDetailApi.as_view(), name="api-model-detail"),
    path("adapters/", AdapterListCreateApi.as_view(), name="api-adapter-list"),
    path("adapters/<int:adapter_id>/", AdapterDetailApi.as_view(), name="api-adapter-detail"),
    path(
        "adapters/<int:adapter_id>/versions/",
        AdapterVersionListCreateApi.as_view(),
        name="api-adapter-versions",
    ),
    path(
        "adapters/<int:adapter_id>/versions/<int:number>/",
        AdapterVersionDetailApi.as_view(),
        name="api-adapter-version",
    ),
    path("adapters/<int:adapter_id>/aliases/", AliasMoveApi.as_view(), name="api-adapter-alias-move"),
]
