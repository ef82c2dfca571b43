from django.urls import path

from apps.catalog.api import (
    PromptDetailApi,
    PromptLabelSetApi,
    PromptListCreateApi,
    PromptRenderApi,
    PromptVersionCreateApi,
    PromptVersionDetailUpdateApi,
    PromptVersionSubmitApi,
)
from apps.catalog.api_resolve import PromptResolveApi

urlpatterns = [
    path("prompts/", PromptListCreateApi.as_view(), name="api-prompt-list"),
    path("prompts/<str:name>/", PromptDetailApi.as_view(), name="api-prompt-detail"),
    path("prompts/<str:name>/versions/", PromptVersionCreateApi.as_view(), name="api-prompt-version-create"),
    path("prompts/<str:name>/labels/<str:label>/", PromptLabelSetApi.as_view(), name="api-prompt-label-set"),
    path("prompts/<str:name>/render", PromptRenderApi.as_view(), name="api-prompt-render"),
    path("prompts/<str:name>/resolve", PromptResolveApi.as_view(), name="api-prompt-resolve"),
    path(
        "prompt-versions/<int:version_id>/", PromptVersionDetailUpdateApi.as_view(), name="api-prompt-version"
    ),
    path(
        "prompt-versions/<int:version_id>/submit/",
        PromptVersionSubmitApi.as_view(),
        name="api-prompt-version-submit",
    ),
]
