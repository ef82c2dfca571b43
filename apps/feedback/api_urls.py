from django.urls import path

from apps.feedback import api

urlpatterns = [
    path("feedback/", api.EndUserFeedbackApi.as_view(), name="api-feedback"),
    path("feedback/schemas/", api.SchemaListCreateApi.as_view(), name="api-feedback-schemas"),
    path("feedback/queues/", api.QueueListCreateApi.as_view(), name="api-feedback-queues"),
    path("feedback/queues/<int:queue_id>/", api.QueueDetailApi.as_view(), name="api-feedback-queue"),
    path("feedback/queues/<int:queue_id>/next", api.QueueNextApi.as_view(), name="api-feedback-next"),
    path(
        "feedback/queues/<int:queue_id>/results", api.QueueResultsApi.as_view(), name="api-feedback-results"
    ),
    path(
        "feedback/queues/<int:queue_id>/datasets", api.DatasetExportApi.as_view(), name="api-feedback-export"
    ),
    path("feedback/slots/<int:slot_id>/submit", api.SlotSubmitApi.as_view(), name="api-feedback-submit"),
    path("feedback/slots/<int:slot_id>/skip", api.SlotSkipApi.as_view(), name="api-feedback-skip"),
    path(
        "feedback/items/<int:item_id>/adjudication",
        api.AdjudicationApi.as_view(),
        name="api-feedback-adjudicate",
    ),
    path("datasets/", api.DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<int:dataset_id>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:dataset_id>/download", api.DatasetDownloadApi.as_view(), name="api-dataset-download"),
]
