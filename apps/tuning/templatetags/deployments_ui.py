"""Template helpers of the deployment pages."""

from django import template

register = template.Library()

# Deployment status → badge tone (see .badge-* in static/css/atalaya.css).
_TONES = {
    "draft": "neutral",
    "pending_approval": "info",
    "approved": "success",
    "deploying": "info",
    "live": "warning",
    "promoted": "success",
    "rolled_back": "muted",
    "replaced": "muted",
    "failed": "danger",
    "rejected": "danger",
}


@register.filter
def deployment_tone(status: str) -> str:
    return _TONES.get(str(status), "neutral")


@register.filter
def share_of(split: dict, deployed_model_id: str) -> int:
    """A deployed model's share of an endpoint's split (0 when it has none)."""
    if not isinstance(split, dict) or not deployed_model_id:
        return 0
    return int(split.get(deployed_model_id, 0))
