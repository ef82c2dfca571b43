from django.urls import path

from apps.accounts.api import TokenListCreateApi, TokenRevokeApi

urlpatterns = [
    path("tokens/", TokenListCreateApi.as_view(), name="api-token-list"),
    path("tokens/<int:token_id>/", TokenRevokeApi.as_view(), name="api-token-revoke"),
]
