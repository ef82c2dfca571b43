from django.urls import path

from apps.catalog.api_resolve import PromptResolveApi

urlpatterns = [
    path("prompts/<str:name>/resolve", PromptResolveApi.as_view(), name="api-prompt-resolve"),
]
