"""Template helpers for the console: status badges, audit summaries."""

import json
from typing import Any

from django import template
from django.utils.translation import gettext as _

from apps.audit.actions import action_label as _action_label

register = template.Library()

# Status value → badge tone (see .badge-* in static/css/atalaya.css).
_TONES = {
    "draft": "neutral",
    "in_review": "info",
    "open": "info",
    "pending": "info",
    "approved": "success",
    "applied": "success",
    "approve": "success",
    "changes_requested": "warning",
    "request_changes": "warning",
    "rejected": "danger",
    "reject": "danger",
    "withdrawn": "neutral",
    "retired": "muted",
    "active": "success",
    "revoked": "danger",
    "expired": "muted",
    "pending_approval": "info",
    "queued": "info",
    "running": "info",
    "deploying": "info",
    "succeeded": "success",
    "completed": "success",
    "live": "success",
    "promoted": "success",
    "failed": "danger",
    "cancelled": "muted",
    "rolled_back": "warning",
}


@register.filter
def tone(status: str) -> str:
    return _TONES.get(str(status), "neutral")


@register.filter
def action_label(action: str) -> str:
    return _action_label(action)


def _short(value: Any, limit: int = 48) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    if value is None:
        text = "—"
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def changes_summary(changes: Any) -> list[str]:
    """One line per changed key: `key: from → to` for before/after pairs, `key: value` otherwise."""
    if not isinstance(changes, dict):
        return [_short(changes)] if changes else []
    lines = []
    for key, value in changes.items():
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            lines.append(f"{key}: {_short(value['from'], 30)} → {_short(value['to'], 30)}")
        else:
            lines.append(f"{key}: {_short(value)}")
    return lines


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


@register.simple_tag
def token_status(token: Any) -> str:
    if token.revoked_at is not None:
        return "revoked"
    if not token.is_active():
        return "expired"
    return "active"


@register.filter
def token_status_label(status: str) -> str:
    return {"active": _("Active"), "revoked": _("Revoked"), "expired": _("Expired")}.get(status, status)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    return mapping.get(key, key) if hasattr(mapping, "get") else key
