from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.common import health, metrics
from apps.common import views as common_views
from apps.logs.api import OtlpTracesApi

urlpatterns = [
    path("", common_views.home, name="home"),
    path("healthz", common_views.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/", include("apps.accounts.urls")),
    path("prompts/", include("apps.catalog.urls")),
    path("reviews/", include("apps.workflows.urls")),
    path("audit/", include("apps.audit.urls")),
    path("logs/", include("apps.logs.urls")),
    path("costs/", include("apps.costs.urls")),
    path("registry/", include("apps.registry.urls")),
    path("tuning/", include("apps.tuning.urls")),
    path("deployments/", include("apps.tuning.urls_deployments")),
    path("feedback/", include("apps.feedback.urls")),
    path("golden-sets/", include("apps.evaluation.urls_golden")),
    path("evaluations/runs/", include("apps.evaluation.urls_runs")),
    path("api/v1/", include("console.api_urls")),
    # OpenTelemetry (OTLP/HTTP) at the root, where exporters post with OTEL_EXPORTER_OTLP_ENDPOINT=<console>
    path("v1/traces", OtlpTracesApi.as_view(), name="otlp-traces"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    path(settings.ADMIN_URL, admin.site.urls),
]

handler404 = "apps.common.views.not_found"
handler403 = "apps.common.views.forbidden"
handler500 = "apps.common.views.server_error"
