from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("", views.prompt_list_view, name="list"),
    path("new/", views.prompt_create_view, name="prompt_create"),
    path("<slug:team>/<str:name>/", views.prompt_detail, name="prompt"),
    path("<slug:team>/<str:name>/edit/", views.prompt_edit, name="prompt_edit"),
    path("<slug:team>/<str:name>/labels/", views.label_set, name="label_set"),
    path("<slug:team>/<str:name>/preview/", views.version_preview, name="preview"),
    path("<slug:team>/<str:name>/versions/new/", views.version_create, name="version_create"),
    path("<slug:team>/<str:name>/v/<int:number>/", views.version_detail, name="version"),
    path("<slug:team>/<str:name>/v/<int:number>/edit/", views.version_edit, name="version_edit"),
    path("<slug:team>/<str:name>/v/<int:number>/submit/", views.version_submit, name="version_submit"),
    path("<slug:team>/<str:name>/v/<int:number>/retire/", views.version_retire, name="version_retire"),
]
