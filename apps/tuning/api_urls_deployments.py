from django.urls import path

from apps.tuning.api_deployments import (
    DeploymentDetailApi,
    DeploymentListCreateApi,
    DeploymentPromoteApi,
    DeploymentRollbackApi,
    DeploymentSubmitApi,
    EndpointDetailApi,
    EndpointListCreateApi,
)

urlpatterns = [
    path("endpoints/", EndpointListCreateApi.as_view(), name="api-endpoint-list"),
    path("endpoints/<int:endpoint_id>/", EndpointDetailApi.as_view(), name="api-endpoint-detail"),
    path("deployments/", DeploymentListCreateApi.as_view(), name="api-deployment-list"),
    path("deployments/<int:deployment_id>/", DeploymentDetailApi.as_view(), name="api-deployment-detail"),
    path(
        "deployments/<int:deployment_id>/submit/", DeploymentSubmitApi.as_view(), name="api-deployment-submit"
    ),
    path(
        "deployments/<int:deployment_id>/promote/",
        DeploymentPromoteApi.as_view(),
        name="api-deployment-promote",
    ),
    path(
        "deployments/<int:deployment_id>/rollback/",
        DeploymentRollbackApi.as_view(),
        name="api-deployment-rollback",
    ),
]
