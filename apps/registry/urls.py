from django.urls import path

from apps.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.index, name="index"),
    path("models/new/", views.base_model_new, name="base_model_new"),
    path("adapters/new/", views.adapter_new, name="adapter_new"),
    path("adapters/<int:adapter_id>/", views.adapter_detail, name="adapter"),
    path("adapters/<int:adapter_id>/versions/new/", views.version_new, name="version_new"),
    path("adapters/<int:adapter_id>/aliases/", views.alias_move, name="alias_move"),
]
