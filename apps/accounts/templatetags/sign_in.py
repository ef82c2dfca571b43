"""`{% sign_in_methods as methods %}` for the sign-in page: which ways of signing in are on."""

from typing import Any

from django import template
from django.conf import settings

from apps.accounts.oidc import oidc_config

register = template.Library()


@register.simple_tag
def sign_in_methods() -> dict[str, Any]:
    config = oidc_config()
    return {
        "password": settings.PASSWORD_SIGN_IN,
        "oidc_provider": config.policy.provider_name if config is not None else "",
    }
