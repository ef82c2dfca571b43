"""UI tests: Django's test client against the server-rendered pages."""

from dataclasses import dataclass

import pytest
from django.test import Client

from apps.catalog.models import Prompt, PromptVersion
from apps.workflows.models import ApprovalRequest
from apps.workflows.services import approval_subject_request
from tests.factories import make_approved, make_prompt, make_submitted, make_version, put_on_label


@pytest.fixture
def client_as():
    """client_as(user) → a test client with that user's session; client_as(None) → anonymous."""

    def make(user=None) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@dataclass
class Catalog:
    prompt: Prompt
    approved: PromptVersion  # v1, on production
    in_review: PromptVersion  # v2, submitted by eng
    draft: PromptVersion  # v3, by eng
    request: ApprovalRequest  # the open request for v2
    finance_prompt: Prompt


@pytest.fixture
def catalog(world) -> Catalog:
    prompt = make_prompt(world.support, world.eng, description="Greets customers", tags=["chat"])
    v1 = make_approved(prompt, world.eng, world.gov, message="First version")
    put_on_label(prompt, v1, "production", world.gov)
    v2 = make_submitted(
        prompt,
        world.eng,
        messages=[
            {"role": "system", "template": "You are the friendly assistant of {{ company }}."},
            {"role": "user", "template": "{{ question }}"},
        ],
        message="Friendlier",
    )
    v3 = make_version(prompt, world.eng, message="Work in progress")
    finance_prompt = make_prompt(world.finance, world.fin_eng, name="invoice")
    make_version(finance_prompt, world.fin_eng)
    return Catalog(
        prompt=prompt,
        approved=v1,
        in_review=v2,
        draft=v3,
        request=approval_subject_request(subject=v2),
        finance_prompt=finance_prompt,
    )
