"""API v1: one module per app (apps/<app>/api_urls.py), mounted under /api/v1/."""

from django.urls import include, path

import apps.common.api  # noqa: F401  (registers the Bearer token scheme with the OpenAPI generator)

urlpatterns = [
    path("", include("apps.catalog.api_urls")),
    path("", include("apps.workflows.api_urls")),
    path("", include("apps.audit.api_urls")),
    path("", include("apps.accounts.api_urls")),
    path("", include("apps.logs.api_urls")),
    path("", include("apps.costs.api_urls")),
    path("", include("apps.registry.api_urls")),
    path("", include("apps.tuning.api_urls")),
    path("", include("apps.tuning.api_urls_deployments")),
    path("", include("apps.feedback.api_urls")),
    path("", include("apps.evaluation.api_urls_golden")),
    path("", include("apps.evaluation.api_urls_runs")),
]
