from django.urls import path

from apps.feedback import views

app_name = "feedback"
urlpatterns = [
    path("", views.index, name="index"),
    path("queues/new/", views.queue_new, name="queue_new"),
    path("queues/<int:queue_id>/", views.queue_detail, name="queue"),
    path("queues/<int:queue_id>/annotate/", views.annotate, name="annotate"),
    path("queues/<int:queue_id>/export/", views.queue_export, name="export"),
    path("items/<int:item_id>/", views.item_detail, name="item"),
    path("schemas/", views.schemas, name="schemas"),
    path("datasets/", views.datasets, name="datasets"),
    path("datasets/<int:dataset_id>/download/", views.dataset_download, name="dataset_download"),
]
