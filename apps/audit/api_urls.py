from django.urls import path

from apps.audit.api import AuditEventListApi, AuditVerifyApi

urlpatterns = [
    path("audit/", AuditEventListApi.as_view(), name="api-audit-list"),
    path("audit/verify", AuditVerifyApi.as_view(), name="api-audit-verify"),
]
