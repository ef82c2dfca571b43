"""The registry of audit actions: an action not listed here cannot be recorded."""

from django.utils.translation import gettext_lazy as _

ACTIONS = {
    "accounts.signed_in": _("Signed in"),
    "accounts.signed_out": _("Signed out"),
    "accounts.sign_in_failed": _("Sign-in failed"),
    "accounts.token_created": _("API token created"),
    "accounts.token_revoked": _("API token revoked"),
    "accounts.team_created": _("Team created"),
    "accounts.membership_granted": _("Role granted"),
    "catalog.prompt_created": _("Prompt created"),
    "catalog.prompt_updated": _("Prompt updated"),
    "catalog.version_created": _("Version drafted"),
    "catalog.version_updated": _("Draft edited"),
    "catalog.version_submitted": _("Version submitted for review"),
    "catalog.version_approved": _("Version approved"),
    "catalog.version_rejected": _("Version rejected"),
    "catalog.version_changes_requested": _("Changes requested"),
    "catalog.version_withdrawn": _("Version withdrawn from review"),
    "catalog.version_retired": _("Version retired"),
    "catalog.label_moved": _("Label moved"),
    "catalog.label_move_requested": _("Label move requested"),
    "catalog.label_move_rejected": _("Label move refused"),
    "workflows.request_opened": _("Approval requested"),
    "workflows.decision_recorded": _("Review decision"),
    "workflows.request_closed": _("Approval request closed"),
    "workflows.policy_changed": _("Approval policy changed"),
    "audit.chain_verified": _("Audit chain verified"),
    "costs.price_set": _("Price set"),
    "costs.budget_created": _("Budget created"),
    "costs.budget_updated": _("Budget changed"),
    "costs.budget_alert": _("Budget threshold reached"),
    "costs.hard_limit_changed": _("Hard budget limit changed state"),
    "costs.raise_requested": _("Budget raise requested"),
    "costs.raise_decided": _("Budget raise decided"),
    "logs.quarantine_retried": _("Quarantine retried"),
    "logs.retention_applied": _("Old logs deleted (retention)"),
    "logs.policy_changed": _("Log policy changed"),
    "feedback.schema_created": _("Rating schema created"),
    "feedback.queue_created": _("Annotation queue created"),
    "feedback.queue_closed": _("Annotation queue closed"),
    "feedback.item_adjudicated": _("Item adjudicated"),
    "feedback.dataset_exported": _("Dataset exported"),
}


def action_label(action: str) -> str:
    return str(ACTIONS.get(action, action))
