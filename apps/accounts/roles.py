"""Roles held in a team, token scopes, and what each allows."""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    ADMIN = "admin", _("Administrator")
    GOVERNANCE = "governance", _("Governance")
    ENGINEER = "engineer", _("Engineer")
    PRODUCT_OWNER = "product_owner", _("Product owner")
    ANNOTATOR = "annotator", _("Annotator")


class Scope(models.TextChoices):
    PROMPTS_READ = "prompts:read", _("Read and resolve prompts")
    PROMPTS_WRITE = "prompts:write", _("Create prompts and versions, submit, move labels")
    APPROVALS_WRITE = "approvals:write", _("Decide approval requests")
    AUDIT_READ = "audit:read", _("Read and verify the audit trail")
    LOGS_READ = "logs:read", _("Read redacted logs")
    LOGS_WRITE = "logs:write", _("Send logs")
    FEEDBACK_WRITE = "feedback:write", _("Send end-user feedback")
    FEEDBACK_READ = "feedback:read", _("Read rating schemas, queues, results and datasets")
    ANNOTATIONS_WRITE = (
        "annotations:write",
        _("Define schemas and queues, annotate, adjudicate, export datasets"),
    )
    COSTS_READ = "costs:read", _("Read costs")
    COSTS_WRITE = "costs:write", _("Manage budgets and price tables")
    MODELS_READ = "models:read", _("Read the model and adapter registry")
    MODELS_WRITE = "models:write", _("Register models, adapters and versions; request alias moves")
    EVALUATIONS_READ = "evaluations:read", _("Read golden sets and evaluation runs")
    EVALUATIONS_WRITE = "evaluations:write", _("Edit golden sets and start evaluation runs")
    ALL = "all", _("Everything its user may do in the team")


# Who may do what, per team. A capability is granted by holding any of these roles in the team.
CATALOG_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER, Role.PRODUCT_OWNER})
CATALOG_AUTHORS = frozenset({Role.ADMIN, Role.ENGINEER})
LABEL_MOVERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER})
PROTECTED_LABEL_MOVERS = frozenset({Role.GOVERNANCE})
AUDIT_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE})
TOKEN_ADMINS = frozenset({Role.ADMIN})
REGISTRY_READERS = frozenset({Role.ADMIN, Role.GOVERNANCE, Role.ENGINEER, Role.PRODUCT_OWNER})
REGISTRY_WRITERS = frozenset({Role.ADMIN, Role.ENGINEER})
