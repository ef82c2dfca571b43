from django.urls import path

from apps.accounts.api import TokenListApi, TokenRevokeApi

urlpatterns = [
    path("tokens/", TokenListApi.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", TokenRevokeApi.as_view(), name="api-token-revoke"),
]
