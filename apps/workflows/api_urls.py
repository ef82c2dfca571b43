from django.urls import path

from apps.workflows.api import (
    ApprovalDecisionCreateApi,
    ApprovalDetailApi,
    ApprovalListApi,
    ApprovalWithdrawApi,
)
from apps.workflows.api_policies import ApprovalPolicyListApi, ApprovalPolicySetApi

urlpatterns = [
    path("approvals/", ApprovalListApi.as_view(), name="api-approval-list"),
    path("approvals/<int:request_id>/", ApprovalDetailApi.as_view(), name="api-approval-detail"),
    path(
        "approvals/<int:request_id>/decisions/",
        ApprovalDecisionCreateApi.as_view(),
        name="api-approval-decide",
    ),
    path("approvals/<int:request_id>/withdraw/", ApprovalWithdrawApi.as_view(), name="api-approval-withdraw"),
    path("approval-policies/", ApprovalPolicyListApi.as_view(), name="api-approval-policy-list"),
    path(
        "approval-policies/<slug:team>/<slug:subject_kind>/",
        ApprovalPolicySetApi.as_view(),
        name="api-approval-policy-set",
    ),
]
