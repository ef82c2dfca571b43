from django.urls import path

from apps.tuning import views

app_name = "tuning"
urlpatterns = [
    path("", views.request_list, name="list"),
    path("new/", views.request_new, name="new"),
    path("<int:request_id>/", views.request_detail, name="request"),
    path("<int:request_id>/submit/", views.request_submit, name="submit"),
    path("<int:request_id>/cancel/", views.request_cancel, name="cancel"),
]
