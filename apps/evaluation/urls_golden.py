from django.urls import path

from apps.evaluation import views_golden as views

app_name = "golden"
urlpatterns = [
    path("", views.golden_set_list, name="list"),
    path("new/", views.golden_set_new, name="create"),
    path("<int:golden_set_id>/", views.golden_set_detail, name="detail"),
    path("<int:golden_set_id>/edit/", views.golden_set_edit, name="edit"),
    path("<int:golden_set_id>/cases/new/", views.golden_case_new, name="case_create"),
    path("<int:golden_set_id>/cases/<int:position>/edit/", views.golden_case_edit, name="case_edit"),
    path("<int:golden_set_id>/cases/<int:position>/delete/", views.golden_case_delete, name="case_delete"),
    path("<int:golden_set_id>/import/", views.golden_set_import_view, name="import"),
    path("<int:golden_set_id>/export/", views.golden_set_export_view, name="export"),
    path("from-event/<int:event_id>/", views.golden_case_from_event, name="from_event"),
    path(
        "from-annotation/<int:annotation_id>/", views.golden_case_from_annotation_view, name="from_annotation"
    ),
]
