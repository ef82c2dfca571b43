"""audit_event_record(): called by every service inside its own transaction."""

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from apps.audit.actions import ACTIONS
from apps.audit.models import AuditChainHead, AuditEvent, AuditVerification
from apps.common.middleware import current_request_context

GENESIS_HASH = "0" * 64
_SECRET_KEY = re.compile(r"(secret|password|token|api_?key|credential|webhook)", re.IGNORECASE)
MASK = "********"


def mask_secrets(value: Any) -> Any:
    """Replace values whose key names a secret, at any depth."""
    if isinstance(value, dict):
        return {
            k: (MASK if _SECRET_KEY.search(str(k)) and v not in (None, "") else mask_secrets(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _canonical(value: Any) -> Any:
    """JSON-stable form: what is hashed must read back identically from any database."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def event_digest(
    *,
    sequence: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor_username: str,
    team_id: int | None,
    team_slug: str,
    action: str,
    target_type: str,
    target_id: str,
    target_repr: str,
    changes: Any,
    context: Any,
    prev_hash: str,
) -> str:
    payload = {
        "sequence": sequence,
        "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_id": actor_id,
        "actor_username": actor_username,
        "team_id": team_id,
        "team_slug": team_slug,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "target_repr": target_repr,
        "changes": changes,
        "context": context,
        "prev_hash": prev_hash,
    }
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _digest_of(event: AuditEvent) -> str:
    return event_digest(
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        actor_id=event.actor_id,
        actor_username=event.actor_username,
        team_id=event.team_id,
        team_slug=event.team_slug,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        target_repr=event.target_repr,
        changes=event.changes,
        context=event.context,
        prev_hash=event.prev_hash,
    )


def audit_event_record(
    *,
    actor: Any,
    action: str,
    target: models.Model | None = None,
    team: Any = None,
    changes: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain. Must run inside the caller's transaction."""
    if action not in ACTIONS:
        raise ValueError(f"Unknown audit action {action!r}: add it to apps/audit/actions.py")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("audit_event_record() must be called inside the service's transaction")
    if team is None and target is not None:
        team = getattr(target, "team", None)
    request_context = current_request_context()
    full_context: dict[str, Any] = request_context.as_dict() if request_context else {"via": "system"}
    token = getattr(actor, "active_token", None) if actor is not None else None
    if token is not None:
        full_context["bearer"] = token.display
    if context:
        full_context.update(context)

    head, _ = AuditChainHead.objects.select_for_update().get_or_create(id=1)
    event = AuditEvent(
        sequence=head.last_sequence + 1,
        occurred_at=timezone.now(),
        actor_id=getattr(actor, "pk", None),
        actor_username=getattr(actor, "username", "") or "",
        team_id=getattr(team, "pk", None),
        team_slug=getattr(team, "slug", "") or "",
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:300] if target is not None else "",
        changes=_canonical(mask_secrets(changes or {})),
        context=_canonical(mask_secrets(full_context)),
        prev_hash=head.last_hash,
    )
    event.hash = _digest_of(event)
    event.save()
    head.last_sequence = event.sequence
    head.last_hash = event.hash
    head.save(update_fields=["last_sequence", "last_hash"])
    return event


@dataclass(frozen=True)
class VerificationResult:
    ok: bool
    events_checked: int
    first_broken_sequence: int | None = None
    reason: str = ""


def audit_chain_verify(*, batch_size: int = 2000) -> VerificationResult:
    """Walk the chain in order; report the first event whose link or content does not hold."""
    expected_prev = GENESIS_HASH
    expected_sequence = 1
    checked = 0
    last_id = 0
    while True:
        batch = list(
            AuditEvent.objects.filter(sequence__gte=expected_sequence).order_by("sequence")[:batch_size]
        )
        if not batch:
            break
        for event in batch:
            if event.sequence != expected_sequence:
                return VerificationResult(
                    False, checked, expected_sequence, f"event #{expected_sequence} is missing (deleted)"
                )
            if event.prev_hash != expected_prev:
                return VerificationResult(
                    False,
                    checked,
                    event.sequence,
                    f"event #{event.sequence} does not link to the event before it",
                )
            if _digest_of(event) != event.hash:
                return VerificationResult(
                    False,
                    checked,
                    event.sequence,
                    f"event #{event.sequence} was modified after it was written",
                )
            expected_prev = event.hash
            expected_sequence += 1
            checked += 1
            last_id = event.sequence
        if len(batch) < batch_size:
            break
    head = AuditChainHead.objects.filter(id=1).first()
    if head is not None and head.last_sequence != last_id:
        missing = last_id + 1
        return VerificationResult(
            False,
            checked,
            missing,
            f"event #{missing} is missing (the chain head records #{head.last_sequence})",
        )
    if head is not None and head.last_sequence and head.last_hash != expected_prev:
        return VerificationResult(False, checked, last_id, f"event #{last_id} does not match the chain head")
    return VerificationResult(True, checked)


def audit_verification_run() -> AuditVerification:
    """Run the chain check and keep its outcome (scheduled by beat)."""
    result = audit_chain_verify()
    return AuditVerification.objects.create(
        ok=result.ok,
        events_checked=result.events_checked,
        first_broken_sequence=result.first_broken_sequence,
        reason=result.reason,
    )
