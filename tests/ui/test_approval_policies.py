"""The approval policies pages: only a team's governance sees and changes them; the evaluation gate and its
thresholds are set through the form, audited, and invalid thresholds say which key is wrong and change nothing."""

import json

import pytest
from django.conf import settings
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.workflows.models import ApprovalPolicy

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_gov"]
LIST = {"admin": 403, "gov": 200, "eng": 403, "owner": 403, "ann1": 403, "fin_gov": 200}
# fin_gov governs finance only: support's policies are not theirs to see (404).
EDIT = {"admin": 403, "gov": 200, "eng": 403, "owner": 403, "ann1": 403, "fin_gov": 404}
FORM = {
    "approvals_required": "2",
    "approver_role": "governance",
    "requires_evaluation": "on",
    "evaluation_thresholds": json.dumps({"pass_rate": {"min": 0.9}, "max_regression": 0.05}),
}


@pytest.mark.parametrize("username", USERS)
def test_page_matrix(world, client_as, username):
    client = client_as(None if username == "anon" else getattr(world, username))
    pages = {
        reverse("workflows:policies"): LIST,
        reverse("workflows:policy_edit", args=["support", "prompt_version"]): EDIT,
    }
    for url, statuses in pages.items():
        response = client.get(url)
        if username == "anon":
            assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        else:
            assert response.status_code == statuses[username], url


@pytest.mark.parametrize("username", ["admin", "eng", "owner", "ann1", "fin_gov"])
def test_others_cannot_save_and_nothing_changes(world, client_as, username):
    response = client_as(getattr(world, username)).post(
        reverse("workflows:policy_edit", args=["support", "prompt_version"]), FORM
    )
    assert response.status_code == (404 if username == "fin_gov" else 403)
    assert not ApprovalPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="workflows.policy_changed").exists()


def test_governance_requires_the_gate_through_the_form(world, client_as):
    gov = client_as(world.gov)
    listing = gov.get(reverse("workflows:policies")).content.decode()
    assert "Prompt version" in listing and "Not required" in listing and "Default" in listing
    # Only the support team, which gov governs, is listed.
    assert "finance" not in listing
    url = reverse("workflows:policy_edit", args=["support", "prompt_version"])
    form = gov.get(url).content.decode()
    assert "Require a passed evaluation" in form and "max_regression" in form
    assert "Cost threshold" not in form  # the cost rule is for tuning requests

    response = gov.post(url, FORM)
    assert response.status_code == 302 and response["Location"] == reverse("workflows:policies")
    policy = ApprovalPolicy.objects.get(team=world.support, subject_kind="prompt_version")
    assert policy.approvals_required == 2 and policy.requires_evaluation
    assert policy.evaluation_thresholds == {
        "pass_rate": {"min": 0.9},
        "max_regression": {"pass_rate": 0.05, "judge_mean": 0.05},
    }
    event = AuditEvent.objects.get(action="workflows.policy_changed")
    assert event.actor_id == world.gov.pk and event.changes["to"]["requires_evaluation"] is True
    listing = gov.get(reverse("workflows:policies")).content.decode()
    assert "Required" in listing and "This team" in listing and "Pass rate ≥ 0.9" in listing


def test_invalid_thresholds_say_which_key_and_change_nothing(world, client_as):
    url = reverse("workflows:policy_edit", args=["support", "prompt_version"])
    gov = client_as(world.gov)
    response = gov.post(url, FORM | {"evaluation_thresholds": '{"pass_rat": {"min": 0.9}}'})
    assert response.status_code == 200
    assert "pass_rat" in response.content.decode() and "errorlist" in response.content.decode()
    response = gov.post(url, FORM | {"evaluation_thresholds": "{not json"})
    assert response.status_code == 200 and "errorlist" in response.content.decode()
    assert not ApprovalPolicy.objects.exists()


def test_a_tuning_policy_has_the_cost_rule_and_no_gate(world, client_as):
    url = reverse("workflows:policy_edit", args=["support", "tuning_request"])
    gov = client_as(world.gov)
    form = gov.get(url).content.decode()
    assert "Cost threshold" in form and "Require a passed evaluation" not in form
    data = {
        "approvals_required": "1",
        "approver_role": "governance",
        "cost_threshold": "10",
        "approvals_above_threshold": "2",
    }
    assert gov.post(url, data).status_code == 302
    policy = ApprovalPolicy.objects.get(subject_kind="tuning_request")
    assert policy.approvals_for(50) == 2 and not policy.requires_evaluation


def test_unknown_kind_is_not_found(world, client_as):
    assert client_as(world.gov).get("/reviews/policies/support/nothing/").status_code == 404


def test_the_review_queue_links_the_policies_for_governance_only(world, client_as):
    link = reverse("workflows:policies")
    assert link in client_as(world.gov).get(reverse("workflows:queue")).content.decode()
    assert link not in client_as(world.eng).get(reverse("workflows:queue")).content.decode()


def test_the_pages_in_spanish(world, client_as):
    gov = client_as(world.gov)
    gov.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    listing = gov.get(reverse("workflows:policies")).content.decode()
    assert "Políticas de aprobación" in listing and "No se exige" in listing
    form = gov.get(reverse("workflows:policy_edit", args=["support", "prompt_version"])).content.decode()
    assert "Exigir una evaluación superada" in form and "Umbrales de evaluación (JSON)" in form
