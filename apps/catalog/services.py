"""Writes to the prompt catalog. Each checks permission and state, writes, and audits in one transaction."""

import json
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from apps.accounts.models import Team, User
from apps.accounts.roles import CATALOG_AUTHORS, LABEL_MOVERS, PROTECTED_LABEL_MOVERS
from apps.accounts.selectors import user_has_role
from apps.audit.services import audit_event_record
from apps.catalog.models import (
    LabelMove,
    LabelMoveStatus,
    Prompt,
    PromptLabel,
    PromptTag,
    PromptVersion,
    VersionStatus,
    content_hash,
    label_validator,
    name_validator,
)
from apps.catalog.templating import TemplateProblem, template_variables
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.common.tasks import enqueue_on_commit
from apps.workflows.models import ApprovalRequest, SubjectKind
from apps.workflows.registry import SubjectHandler, subject_kind_register
from apps.workflows.services import approval_request_open

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 50
MAX_PARAMETERS_CHARS = 10_000
MAX_TAGS = 20


def resolve_cache_key(team_id: int, name: str, label: str) -> str:
    return f"catalog:resolve:{team_id}:{name}:{label}"


def _validate_slug(value: str, validator: Any, field: str) -> None:
    try:
        validator(value)
    except ValidationError as exc:
        raise Unprocessable(
            f"{field}: {exc.messages[0]}", code="invalid_" + field, details={"field": field}
        ) from None


def _require(actor: User, team_id: int, roles: frozenset[str], what: str) -> None:
    if not user_has_role(actor, team_id, roles):
        raise PermissionDenied(f"You cannot {what} in this team.")


def _normalise_tags(tags: list[str]) -> list[str]:
    clean = sorted({t.strip().lower() for t in tags if t and t.strip()})
    if len(clean) > MAX_TAGS or any(len(t) > 40 for t in clean):
        raise Unprocessable(f"At most {MAX_TAGS} tags of at most 40 characters.", code="invalid_tags")
    return clean


def _validate_content(messages: Any, model: str, parameters: Any) -> list[str]:
    """Check a version's content; return its variables. Raises Unprocessable naming the problem."""
    if not isinstance(messages, list) or not messages:
        raise Unprocessable("messages: give at least one message.", code="invalid_messages")
    if len(messages) > MAX_MESSAGES:
        raise Unprocessable(f"messages: at most {MAX_MESSAGES} messages.", code="invalid_messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or set(message) != {"role", "template"}:
            raise Unprocessable(
                f"messages[{index}]: each message has exactly 'role' and 'template'.",
                code="invalid_messages",
                details={"message_index": index},
            )
        if message["role"] not in ROLES:
            raise Unprocessable(
                f"messages[{index}].role: must be one of {', '.join(ROLES)}.",
                code="invalid_messages",
                details={"message_index": index},
            )
        if not isinstance(message["template"], str) or not message["template"].strip():
            raise Unprocessable(
                f"messages[{index}].template: must be non-empty text.",
                code="invalid_messages",
                details={"message_index": index},
            )
    if not isinstance(model, str) or not model.strip() or len(model) > 200:
        raise Unprocessable("model: name the model (at most 200 characters).", code="invalid_model")
    if not isinstance(parameters, dict):
        raise Unprocessable("parameters: must be an object.", code="invalid_parameters")
    if len(json.dumps(parameters)) > MAX_PARAMETERS_CHARS:
        raise Unprocessable("parameters: too large.", code="invalid_parameters")
    try:
        return template_variables([m["template"] for m in messages])
    except TemplateProblem as problem:
        raise Unprocessable(
            f"Template error in {problem}",
            code="template_syntax_error",
            details={
                "message_index": problem.message_index,
                "line": problem.line,
                "problem": problem.message,
            },
        ) from None


@transaction.atomic
def prompt_create(
    *, actor: User, team: Team, name: str, description: str = "", tags: list[str] | None = None
) -> Prompt:
    _require(actor, team.pk, CATALOG_AUTHORS, "create prompts")
    _validate_slug(name, name_validator, "name")
    clean_tags = _normalise_tags(tags or [])
    try:
        with transaction.atomic():
            prompt = Prompt.objects.create(team=team, name=name, description=description, created_by=actor)
    except IntegrityError:
        raise Conflict(
            f"A prompt named {name!r} already exists in {team.slug}.", code="prompt_exists"
        ) from None
    PromptTag.objects.bulk_create([PromptTag(prompt=prompt, name=t) for t in clean_tags])
    audit_event_record(
        actor=actor,
        action="catalog.prompt_created",
        target=prompt,
        changes={"name": name, "description": description, "tags": clean_tags},
    )
    return prompt


@transaction.atomic
def prompt_update(
    *, actor: User, prompt: Prompt, description: str | None = None, tags: list[str] | None = None
) -> Prompt:
    _require(actor, prompt.team_id, CATALOG_AUTHORS, "edit prompts")
    prompt = Prompt.objects.select_for_update().get(pk=prompt.pk)
    changes: dict[str, Any] = {}
    if description is not None and description != prompt.description:
        changes["description"] = {"from": prompt.description, "to": description}
        prompt.description = description
        prompt.save(update_fields=["description", "updated_at"])
    if tags is not None:
        clean = _normalise_tags(tags)
        before = list(prompt.tags.values_list("name", flat=True))
        if clean != sorted(before):
            prompt.tags.all().delete()
            PromptTag.objects.bulk_create([PromptTag(prompt=prompt, name=t) for t in clean])
            changes["tags"] = {"from": before, "to": clean}
    if changes:
        audit_event_record(actor=actor, action="catalog.prompt_updated", target=prompt, changes=changes)
    return prompt


@transaction.atomic
def prompt_version_create(
    *,
    actor: User,
    prompt: Prompt,
    messages: list[dict[str, str]],
    model: str,
    parameters: dict[str, Any] | None = None,
    message: str = "",
) -> PromptVersion:
    _require(actor, prompt.team_id, CATALOG_AUTHORS, "write prompt versions")
    parameters = parameters or {}
    variables = _validate_content(messages, model, parameters)
    Prompt.objects.select_for_update().filter(pk=prompt.pk).first()  # serialise numbering
    number = (prompt.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = PromptVersion.objects.create(
        prompt=prompt,
        number=number,
        messages=messages,
        model=model.strip(),
        parameters=parameters,
        variables=variables,
        message=message[:500],
        created_by=actor,
        content_hash=content_hash(messages=messages, model=model.strip(), parameters=parameters),
    )
    audit_event_record(
        actor=actor,
        action="catalog.version_created",
        target=version,
        changes={
            "number": number,
            "model": version.model,
            "content_hash": version.content_hash,
            "message": version.message,
        },
    )
    return version


@transaction.atomic
def prompt_version_update(
    *,
    actor: User,
    version: PromptVersion,
    messages: list[dict[str, str]],
    model: str,
    parameters: dict[str, Any] | None = None,
    message: str = "",
) -> PromptVersion:
    """Edit a draft. Submitted versions are frozen: write a new version instead."""
    _require(actor, version.prompt.team_id, CATALOG_AUTHORS, "edit prompt versions")
    version = (
        PromptVersion.objects.select_for_update(of=("self",))
        .select_related("prompt__team")
        .get(pk=version.pk)
    )
    if version.status != VersionStatus.DRAFT:
        raise Conflict(
            f"Version {version.number} is {version.get_status_display().lower()}: its content is frozen. "
            "Write a new version instead.",
            code="version_frozen",
        )
    parameters = parameters or {}
    variables = _validate_content(messages, model, parameters)
    before = version.content_hash
    version.messages, version.model, version.parameters = messages, model.strip(), parameters
    version.variables, version.message = variables, message[:500]
    version.content_hash = content_hash(messages=messages, model=version.model, parameters=parameters)
    version.save()
    audit_event_record(
        actor=actor,
        action="catalog.version_updated",
        target=version,
        changes={"content_hash": {"from": before, "to": version.content_hash}},
    )
    return version


@transaction.atomic
def prompt_version_submit(*, actor: User, version: PromptVersion) -> ApprovalRequest:
    _require(actor, version.prompt.team_id, CATALOG_AUTHORS, "submit prompt versions")
    version = (
        PromptVersion.objects.select_for_update(of=("self",))
        .select_related("prompt__team")
        .get(pk=version.pk)
    )
    if version.status != VersionStatus.DRAFT:
        raise Conflict(
            f"Only drafts can be submitted; version {version.number} is "
            f"{version.get_status_display().lower()}.",
            code="invalid_state",
        )
    version.status = VersionStatus.IN_REVIEW
    version.submitted_at = timezone.now()
    version.save(update_fields=["status", "submitted_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action="catalog.version_submitted",
        target=version,
        changes={"status": {"from": "draft", "to": "in_review"}, "content_hash": version.content_hash},
    )
    request = approval_request_open(
        subject=version,
        subject_kind=SubjectKind.PROMPT_VERSION,
        team=version.prompt.team,
        requested_by=actor,
        summary=f"{version.prompt} v{version.number}",
    )
    _notify_reviewers(request)
    return request


@transaction.atomic
def prompt_version_retire(*, actor: User, version: PromptVersion) -> PromptVersion:
    _require(actor, version.prompt.team_id, PROTECTED_LABEL_MOVERS, "retire prompt versions")
    version = (
        PromptVersion.objects.select_for_update(of=("self",))
        .select_related("prompt__team")
        .get(pk=version.pk)
    )
    if version.status != VersionStatus.APPROVED:
        raise Conflict("Only approved versions can be retired.", code="invalid_state")
    labels = list(version.labels.values_list("name", flat=True))
    if labels:
        raise Conflict(
            f"Version {version.number} is still on {', '.join(labels)}: move the label first.",
            code="version_labelled",
            details={"labels": labels},
        )
    version.status = VersionStatus.RETIRED
    version.save(update_fields=["status", "updated_at"])
    audit_event_record(
        actor=actor,
        action="catalog.version_retired",
        target=version,
        changes={"status": {"from": "approved", "to": "retired"}},
    )
    return version


@dataclass(frozen=True)
class LabelResult:
    label: PromptLabel | None = None
    move: LabelMove | None = None
    request: ApprovalRequest | None = None

    @property
    def pending(self) -> bool:
        return self.request is not None


def label_is_protected(name: str) -> bool:
    return name in settings.CATALOG_PROTECTED_LABELS


def _apply_label(
    *,
    actor: User,
    prompt: Prompt,
    label: str,
    version: PromptVersion,
    via_request: ApprovalRequest | None = None,
) -> PromptLabel:
    if version.status != VersionStatus.APPROVED:
        raise Conflict(
            f"Labels point at approved versions only; version {version.number} is "
            f"{version.get_status_display().lower()}.",
            code="version_not_approved",
        )
    current = PromptLabel.objects.select_for_update().filter(prompt=prompt, name=label).first()
    previous = current.version.number if current else None
    if current is None:
        current = PromptLabel.objects.create(prompt=prompt, name=label, version=version, updated_by=actor)
    else:
        current.version, current.updated_by = version, actor
        current.save(update_fields=["version", "updated_by", "updated_at"])
    changes: dict[str, Any] = {"label": label, "from_version": previous, "to_version": version.number}
    if via_request is not None:
        changes["approval_request"] = via_request.pk
    audit_event_record(
        actor=actor, action="catalog.label_moved", target=current, team=prompt.team, changes=changes
    )
    key = resolve_cache_key(prompt.team_id, prompt.name, label)
    transaction.on_commit(lambda: cache.delete(key))
    return current


@transaction.atomic
def prompt_label_set(*, actor: User, prompt: Prompt, label: str, version_number: int) -> LabelResult:
    """Point a label at an approved version. Protected labels move directly only for governance;
    anyone else who may move labels gets an approval request instead."""
    _require(actor, prompt.team_id, LABEL_MOVERS, "move labels")
    _validate_slug(label, label_validator, "label")
    version = PromptVersion.objects.select_for_update().filter(prompt=prompt, number=version_number).first()
    if version is None:
        raise NotFound(f"{prompt.name} has no version {version_number}.")
    if version.status != VersionStatus.APPROVED:
        raise Conflict(
            f"Labels point at approved versions only; version {version.number} is "
            f"{version.get_status_display().lower()}.",
            code="version_not_approved",
        )
    if not label_is_protected(label) or user_has_role(actor, prompt.team_id, PROTECTED_LABEL_MOVERS):
        return LabelResult(label=_apply_label(actor=actor, prompt=prompt, label=label, version=version))
    current = PromptLabel.objects.filter(prompt=prompt, name=label).first()
    move = LabelMove.objects.create(
        prompt=prompt,
        label=label,
        version=version,
        requested_by=actor,
        previous_version=current.version if current else None,
    )
    audit_event_record(
        actor=actor,
        action="catalog.label_move_requested",
        target=move,
        changes={
            "label": label,
            "to_version": version.number,
            "from_version": current.version.number if current else None,
        },
    )
    request = approval_request_open(
        subject=move,
        subject_kind=SubjectKind.LABEL_MOVE,
        team=prompt.team,
        requested_by=actor,
        summary=f"{prompt} {label} → v{version.number}",
    )
    _notify_reviewers(request)
    return LabelResult(move=move, request=request)


def _notify_reviewers(request: ApprovalRequest) -> None:
    from workers.workflows import notify_reviewers

    enqueue_on_commit(notify_reviewers, request.pk)


# Approval engine callbacks: what happens to each subject when its request closes.

_VERSION_OUTCOME = {
    "approved": (VersionStatus.APPROVED, "catalog.version_approved"),
    "rejected": (VersionStatus.REJECTED, "catalog.version_rejected"),
    "changes_requested": (VersionStatus.CHANGES_REQUESTED, "catalog.version_changes_requested"),
    "withdrawn": (VersionStatus.DRAFT, "catalog.version_withdrawn"),
}


def _version_close(*, subject: PromptVersion, request: ApprovalRequest, actor: User, comment: str) -> None:
    status, action = _VERSION_OUTCOME[request.status]
    before = subject.status
    subject.status = status
    subject.decided_at = timezone.now() if status != VersionStatus.DRAFT else None
    subject.save(update_fields=["status", "decided_at", "updated_at"])
    audit_event_record(
        actor=actor,
        action=action,
        target=subject,
        team=request.team,
        changes={
            "status": {"from": before, "to": status},
            "approval_request": request.pk,
            "comment": comment,
        },
    )


_MOVE_OUTCOME = {
    "rejected": LabelMoveStatus.REJECTED,
    "changes_requested": LabelMoveStatus.CHANGES_REQUESTED,
    "withdrawn": LabelMoveStatus.WITHDRAWN,
}


def _move_close(*, subject: LabelMove, request: ApprovalRequest, actor: User, comment: str) -> None:
    if request.status == "approved":
        version = PromptVersion.objects.select_for_update().get(pk=subject.version_id)
        _apply_label(
            actor=actor, prompt=subject.prompt, label=subject.label, version=version, via_request=request
        )
        subject.status = LabelMoveStatus.APPLIED
    else:
        subject.status = _MOVE_OUTCOME[request.status]
        audit_event_record(
            actor=actor,
            action="catalog.label_move_rejected",
            target=subject,
            team=request.team,
            changes={"status": subject.status, "approval_request": request.pk, "comment": comment},
        )
    subject.save(update_fields=["status", "updated_at"])


def register_subjects() -> None:
    subject_kind_register(
        SubjectKind.PROMPT_VERSION,
        SubjectHandler(
            model=PromptVersion,
            on_approved=_version_close,
            on_rejected=_version_close,
            on_changes_requested=_version_close,
            on_withdrawn=_version_close,
        ),
    )
    subject_kind_register(
        SubjectKind.LABEL_MOVE,
        SubjectHandler(
            model=LabelMove,
            on_approved=_move_close,
            on_rejected=_move_close,
            on_changes_requested=_move_close,
            on_withdrawn=_move_close,
        ),
    )
