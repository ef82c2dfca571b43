"""Issue 8's browser test: governance opens a prompt version whose evaluation run failed, sees the failing
cases, cannot approve; after a passing run, approves. The runs are started and carried out through the
services, by the replay provider answering from recorded responses."""

import pytest
from playwright.sync_api import Page, expect

from apps.catalog.services import prompt_version_submit
from apps.evaluation.runs import evaluation_run_execute, evaluation_run_start
from apps.workflows.models import ApprovalRequest, RequestStatus
from apps.workflows.services import approval_policy_change
from tests.e2e.test_prompt_flow import sign_in
from tests.evaluation.runs_helpers import GOOD, build_run_scene, record
from tests.factories import make_world

BAD = {
    "Can I get a refund?": "Refunds are not possible.",  # lacks "30 days"
    "Hello": "Hello! How can I help?",
    "Where is my invoice?": "Send us your password and we will look.",  # lacks "billing page", has "password"
}


@pytest.fixture
def scene(transactional_db):
    world = make_world()
    scene = build_run_scene(world)
    approval_policy_change(
        actor=world.gov,
        team=world.support,
        subject_kind="prompt_version",
        approvals_required=1,
        approver_role="governance",
        requires_evaluation=True,
        evaluation_thresholds={"pass_rate": {"min": 0.9}},
    )
    scene.request = prompt_version_submit(actor=world.eng, version=scene.candidate)
    return scene


def run_replay(scene, answers):
    record(scene.world, scene.candidate, answers)
    run = evaluation_run_start(actor=scene.world.eng, prompt_version=scene.candidate, provider="replay")
    return evaluation_run_execute(run_id=run.pk)


def test_governance_cannot_approve_a_failed_version_and_approves_after_a_passing_run(
    page: Page, live_server, scene, tmp_path
):
    failed = run_replay(scene, BAD)

    # Governance opens the version from the review queue: the gate is not passed, case by case.
    sign_in(page, live_server.url, "gov")
    page.goto(f"{live_server.url}/reviews/")
    page.get_by_role("link", name="support/greeting v2").click()
    gate = page.locator("#evaluation-gate")
    expect(gate.get_by_role("heading", name="Evaluation gate")).to_be_visible()
    expect(gate).to_contain_text("Not passed")
    expect(gate).to_contain_text(
        "Approval is refused until an evaluation run on exactly this content passes."
    )
    expect(gate.get_by_text("REPLAY", exact=True)).to_be_visible()
    expect(gate.get_by_role("link", name=f"Run #{failed.pk}")).to_be_visible()
    checks = gate.locator("table.gate-checks")
    expect(checks).to_contain_text("Pass rate")
    expect(checks).to_contain_text("≥ 0.9")
    expect(checks).to_contain_text("0.3333")
    cases = gate.locator(".gate-case")
    expect(cases).to_have_count(2)
    expect(cases.nth(0)).to_contain_text("refund")
    expect(cases.nth(0)).to_contain_text("30 days")
    expect(cases.nth(0)).to_contain_text("Refunds are not possible.")
    expect(cases.nth(1)).to_contain_text("invoice")
    expect(cases.nth(1)).to_contain_text("password")
    expect(cases.locator("strong")).to_have_text(["refund", "invoice"])  # not the passing "greeting"
    approve = page.locator("button[name=decision][value=approve]")
    expect(approve).to_be_disabled()
    expect(page.locator("#approve-blocked")).to_contain_text("the evaluation gate is not passed")
    page.screenshot(path=str(tmp_path / "gate-failed.png"), full_page=True)
    assert ApprovalRequest.objects.get(pk=scene.request.pk).status == RequestStatus.OPEN

    # The run's page, linked from the panel, has the cases too.
    gate.get_by_role("link", name=f"Run #{failed.pk}").click()
    expect(page.locator("main")).to_contain_text("refund")
    page.go_back()

    # The author fixes nothing in the version (it is frozen): the model's answers were the problem. A new run
    # on exactly this content passes.
    passing = run_replay(scene, GOOD)
    page.reload()
    expect(gate).to_contain_text("Passed")
    expect(gate).not_to_contain_text("Not passed")
    expect(gate.get_by_role("link", name=f"Run #{passing.pk}")).to_be_visible()
    expect(gate.locator(".gate-case")).to_have_count(0)
    expect(approve).to_be_enabled()
    page.get_by_label("Comment").fill("Passed its golden set")
    approve.click()
    expect(page.locator("main")).to_contain_text("Approved")
    assert ApprovalRequest.objects.get(pk=scene.request.pk).status == RequestStatus.APPROVED
