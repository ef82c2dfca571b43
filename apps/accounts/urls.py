from django.urls import path

from apps.accounts import oidc, views

app_name = "accounts"
urlpatterns = [
    path("login/", views.SignInView.as_view(), name="login"),
    path("logout/", views.SignOutView.as_view(), name="logout"),
    path("oidc/start/", oidc.OidcStartView.as_view(), name="oidc_start"),
    path("oidc/callback/", oidc.OidcCallbackView.as_view(), name="oidc_callback"),
    path("tokens/", views.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", views.token_revoke_view, name="token_revoke"),
]
