"""Navigation by role, for templates/base.html. Cheap: one query for the user's roles (cached on the
user for the rest of the request) and, for reviewers only, one count of their review queue."""

from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from apps.accounts.roles import AUDIT_READERS, CATALOG_READERS, REGISTRY_READERS, Role
from apps.accounts.selectors import user_team_roles
from apps.costs.selectors import COST_READERS
from apps.feedback.services import ANNOTATORS, FEEDBACK_MANAGERS
from apps.logs.selectors import LOG_AGGREGATE_READERS


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": []}
    held: set[str] = set()
    for roles in user_team_roles(user).values():
        held |= roles
    match = getattr(request, "resolver_match", None)
    section = match.namespace if match else ""
    items: list[dict[str, Any]] = []

    def add(key: str, label: Any, url: str, badge: int | None = None, sections: tuple[str, ...] = ()) -> None:
        active = section in (key, *sections)
        items.append({"key": key, "label": label, "url": url, "badge": badge, "active": active})

    if held & CATALOG_READERS:
        add("catalog", _("Catalog"), reverse("catalog:list"))
        add("golden", _("Golden sets"), reverse("golden:list"))
    if Role.GOVERNANCE in held:
        from apps.workflows.selectors import review_queue

        add("workflows", _("Reviews"), reverse("workflows:queue"), review_queue(user=user).count())
    if held & LOG_AGGREGATE_READERS:
        add("logs", _("Logs"), reverse("logs:explorer"))
    if held & COST_READERS:
        add("costs", _("Costs"), reverse("costs:dashboard"))
    if held & REGISTRY_READERS:
        # Models: the registry, tuning and deployments, one section with tabs
        add("registry", _("Models"), reverse("registry:index"), sections=("tuning", "deployments"))
    if held & (FEEDBACK_MANAGERS | ANNOTATORS):
        add("feedback", _("Annotation"), reverse("feedback:index"))
    if held & AUDIT_READERS:
        add("audit", _("Audit"), reverse("audit:list"))
    add("accounts", _("Tokens"), reverse("accounts:tokens"))
    if user.is_staff:
        add("admin", _("Admin"), reverse("admin:index"))
    return {"nav_items": items}
