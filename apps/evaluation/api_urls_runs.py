from django.urls import path

from apps.evaluation.api_runs import (
    AdapterVersionEvaluationsApi,
    EvaluationRunDetailApi,
    PromptVersionEvaluationsApi,
)

urlpatterns = [
    path(
        "prompt-versions/<int:version_id>/evaluations/",
        PromptVersionEvaluationsApi.as_view(),
        name="api-prompt-version-evaluations",
    ),
    path(
        "adapters/<int:adapter_id>/versions/<int:number>/evaluations/",
        AdapterVersionEvaluationsApi.as_view(),
        name="api-adapter-version-evaluations",
    ),
    path("evaluations/<int:run_id>/", EvaluationRunDetailApi.as_view(), name="api-evaluation-run"),
]
