from django.urls import path

from apps.workflows.api import (
    ApprovalDecisionCreateApi,
    ApprovalDetailApi,
    ApprovalListApi,
    ApprovalWithdrawApi,
)

urlpatterns = [
    path("approvals/", ApprovalListApi.as_view(), name="api-approval-list"),
    path("approvals/<int:request_id>/", ApprovalDetailApi.as_view(), name="api-approval-detail"),
    path(
        "approvals/<int:request_id>/decisions/",
        ApprovalDecisionCreateApi.as_view(),
        name="api-approval-decide",
    ),
    path("approvals/<int:request_id>/withdraw/", ApprovalWithdrawApi.as_view(), name="api-approval-withdraw"),
]
