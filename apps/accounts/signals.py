"""Sign-in, sign-out and failed sign-ins from the browser go to the audit trail.

Connected in AccountsConfig.ready(). Only sign-ins that come through a real request (the
middleware gave it a request id) are recorded: `force_login` in tests and the shell write nothing.
"""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from apps.accounts.services import session_event_record

OIDC_BACKEND = "apps.accounts.oidc.OidcBackend"


def _from_web(request: HttpRequest | None) -> bool:
    return request is not None and hasattr(request, "request_id")


@receiver(user_logged_in, dispatch_uid="atalaya_audit_signed_in")
def _signed_in(sender, request=None, user=None, **kwargs) -> None:
    # A sign-in through the OIDC provider was audited by oidc_sign_in(), with what it changed.
    if _from_web(request) and getattr(user, "backend", "") != OIDC_BACKEND:
        session_event_record(event="signed_in", user=user)


@receiver(user_logged_out, dispatch_uid="atalaya_audit_signed_out")
def _signed_out(sender, request=None, user=None, **kwargs) -> None:
    if _from_web(request) and user is not None:
        session_event_record(event="signed_out", user=user)


@receiver(user_login_failed, dispatch_uid="atalaya_audit_sign_in_failed")
def _sign_in_failed(sender, credentials=None, request=None, **kwargs) -> None:
    # The OIDC callback (the only caller passing a nonce) audits its own failures, with the reason.
    if _from_web(request) and "nonce" not in (credentials or {}):
        username = str((credentials or {}).get("username", ""))
        session_event_record(event="sign_in_failed", user=None, username=username)
