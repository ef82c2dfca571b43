"""Fixtures for the API tests: a catalog in both teams, and a snapshot of everything an API call could
change, to assert that a refused call wrote nothing (rows and audit events)."""

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction

from apps.accounts.models import ApiToken
from apps.accounts.selectors import user_forget_roles
from apps.audit.models import AuditEvent
from apps.catalog.models import LabelMove, Prompt, PromptLabel, PromptTag, PromptVersion
from apps.workflows.models import ApprovalDecision, ApprovalRequest
from apps.workflows.services import approval_subject_request
from tests.factories import (
    make_approved,
    make_prompt,
    make_submitted,
    make_token,
    make_version,
    make_world,
    put_on_label,
)


def snapshot() -> dict[str, Any]:
    """Everything the API can write, in a comparable form."""
    return {
        "prompts": sorted(Prompt.objects.values_list("id", "team_id", "name", "description")),
        "tags": sorted(PromptTag.objects.values_list("prompt_id", "name")),
        "versions": sorted(
            PromptVersion.objects.values_list("id", "number", "status", "content_hash", "message", "model")
        ),
        "labels": sorted(PromptLabel.objects.values_list("prompt_id", "name", "version_id")),
        "label_moves": sorted(LabelMove.objects.values_list("id", "status")),
        "requests": sorted(ApprovalRequest.objects.values_list("id", "status")),
        "decisions": sorted(ApprovalDecision.objects.values_list("id", "request_id", "decision")),
        "tokens": sorted(ApiToken.objects.values_list("id", "revoked_at", "scopes")),
        "audit_events": AuditEvent.objects.count(),
    }


@dataclass
class Scene:
    """support/greeting and finance/ledger, each with: v1 approved and on `production`; v2 a draft;
    v3 in review, requested by someone outside the permission matrix's roles; v4 in review,
    requested by an engineer of the team (who may withdraw it)."""

    world: Any
    greeting: Prompt
    ledger: Prompt
    support_versions: list[PromptVersion]
    finance_versions: list[PromptVersion]
    support_decide_request: ApprovalRequest  # requested by eng2: gov decides, eng may not
    support_withdraw_request: ApprovalRequest  # requested by eng: only eng withdraws
    finance_decide_request: ApprovalRequest
    finance_withdraw_request: ApprovalRequest
    support_token: ApiToken  # eng2's token in support (admin administers it)
    finance_token: ApiToken  # fin_eng's token in finance


def _catalog(team, author, other_author, reviewer, name):
    prompt = make_prompt(team, author, name=name, tags=["demo"])
    v1 = make_approved(prompt, author, reviewer, message="first")
    put_on_label(prompt, v1, "production", reviewer)
    v2 = make_version(prompt, author, message="draft")
    v3 = make_submitted(prompt, other_author, message="for review")
    v4 = make_submitted(prompt, author, message="to withdraw")
    return prompt, [v1, v2, v3, v4]


def build_scene(world) -> Scene:
    greeting, support_versions = _catalog(world.support, world.eng, world.eng2, world.gov, "greeting")
    # eng2 is an engineer in finance as well, so that one of them requested v3 there.
    ledger, finance_versions = _catalog(world.finance, world.fin_eng, world.eng2, world.fin_gov, "ledger")

    def request_of(version):
        return approval_subject_request(subject=version)

    make_token(world.eng2, world.support, "prompts:read")
    make_token(world.fin_eng, world.finance, "prompts:read")
    return Scene(
        world=world,
        greeting=greeting,
        ledger=ledger,
        support_versions=support_versions,
        finance_versions=finance_versions,
        support_decide_request=request_of(support_versions[2]),
        support_withdraw_request=request_of(support_versions[3]),
        finance_decide_request=request_of(finance_versions[2]),
        finance_withdraw_request=request_of(finance_versions[3]),
        support_token=ApiToken.objects.get(user=world.eng2, team=world.support),
        finance_token=ApiToken.objects.get(user=world.fin_eng, team=world.finance),
    )


@pytest.fixture(scope="module")
def _module_scene(django_db_setup, django_db_blocker):
    """The scene is built once per module inside a transaction that is rolled back at the end; each
    test runs in a savepoint inside it (pytest-django's `db`), so it starts from the same rows."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield build_scene(make_world())
        transaction.set_rollback(True)


@pytest.fixture
def scene(_module_scene, db) -> Scene:
    for user in _module_scene.world.users.values():
        user_forget_roles(user)
    return _module_scene
