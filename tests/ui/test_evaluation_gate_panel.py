"""The evaluation gate on the review pages: the verdict and why, run by run and case by case, who sees it,
the Approve button disabled while the gate is not passed, and the same panel for alias moves and deployments."""

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from apps.workflows.models import ApprovalPolicy, RequestStatus
from tests.evaluation.scenes_gate import FAILING, PASSING, golden_set_make, golden_set_version_add, run_finish

THRESHOLDS = {"pass_rate": {"min": 0.9}}


@pytest.fixture
def gated(world):
    for kind in ("prompt_version", "alias_move", "deployment"):
        ApprovalPolicy.objects.create(
            team=world.support, subject_kind=kind, requires_evaluation=True, evaluation_thresholds=THRESHOLDS
        )


@pytest.fixture
def golden(world, catalog):
    return golden_set_make(prompt=catalog.prompt, author=world.eng)


def review_page(client, catalog) -> str:
    response = client.get(reverse("workflows:request", args=[catalog.request.pk]))
    assert response.status_code == 200
    return response.content.decode()


def approve_button(page: str) -> str:
    start = page.index('value="approve"')
    return page[page.rindex("<button", 0, start) : page.index(">", start) + 1]


def test_no_gate_no_panel(world, catalog, golden, client_as):
    page = review_page(client_as(world.gov), catalog)
    assert "Evaluation gate" not in page
    assert "disabled" not in approve_button(page)


def test_no_run_yet(world, catalog, golden, gated, client_as):
    page = review_page(client_as(world.gov), catalog)
    assert "Evaluation gate" in page and "Not passed" in page
    assert "No run on this content yet for these golden sets" in page and "support-basics" in page
    assert "disabled" in approve_button(page)
    assert "Approve is disabled: the evaluation gate is not passed." in page


def test_a_failed_run_shows_why_case_by_case(world, catalog, golden, gated, client_as):
    run = run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING)
    page = review_page(client_as(world.gov), catalog)
    assert "Not passed" in page and f"Run #{run.pk}" in page
    assert reverse("evaluation_runs:run", args=[run.pk]) in page
    assert "REPLAY" in page  # a replay run is always labelled
    # The threshold check: required and actual.
    assert "Pass rate" in page and "≥ 0.9" in page and "0.3333" in page and "not met" in page
    # The failing cases inline, with their failures, errors and output; the passing case is not listed.
    assert "2 failing cases" in page
    assert "refund policy" in page and "missing required phrase: &#x27;30 days&#x27;" in page
    assert "Refunds are possible within 14 days." in page
    assert "no promises" in page and "provider error: 503 Service Unavailable after 3 attempts" in page
    assert "opening hours" not in page
    assert "disabled" in approve_button(page)
    # The version page shows the same panel.
    version = (
        client_as(world.gov).get(reverse("catalog:version", args=["support", "greeting", 2])).content.decode()
    )
    assert (
        "Evaluation gate" in version and "refund policy" in version and "disabled" in approve_button(version)
    )


def test_a_passing_run_lets_governance_approve(world, catalog, golden, gated, client_as):
    run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING)
    run_finish(
        version=catalog.in_review, golden=golden, requester=world.eng, outputs=PASSING, provider="openai"
    )
    gov = client_as(world.gov)
    page = review_page(gov, catalog)
    assert "Passed" in page and "Not passed" not in page and "REPLAY" not in page
    assert "disabled" not in approve_button(page)
    response = gov.post(reverse("workflows:decide", args=[catalog.request.pk]), {"decision": "approve"})
    assert response.status_code == 302
    catalog.request.refresh_from_db()
    assert catalog.request.status == RequestStatus.APPROVED


def test_a_run_on_another_golden_set_version_does_not_count(world, catalog, golden, gated, client_as):
    run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=PASSING)
    golden_set_version_add(golden_set=golden.golden_set, author=world.eng, cases=[{"name": "new case"}])
    page = review_page(client_as(world.gov), catalog)
    assert "Not passed" in page and "golden set changed since: now v2" in page
    assert "disabled" in approve_button(page)


def test_a_run_on_other_content_does_not_count(world, catalog, golden, gated, client_as):
    other = run_finish(
        version=catalog.in_review, golden=golden, requester=world.eng, outputs=PASSING, subject_hash="0" * 64
    )
    page = review_page(client_as(world.gov), catalog)
    assert (
        "Not passed" in page and "Runs on other content do not count" in page and f"Run #{other.pk}" in page
    )
    assert "No run on this content yet for these golden sets" in page


# Who sees the panel: every reader of the team; only governance is offered (a disabled) Approve.
@pytest.mark.parametrize(
    ("username", "status", "form"),
    [
        ("gov", 200, True),
        ("gov2", 200, True),
        ("eng", 200, False),
        ("owner", 200, False),
        ("admin", 200, False),
        ("ann1", 404, False),
        ("fin_gov", 404, False),
    ],
)
def test_panel_matrix(world, catalog, golden, gated, client_as, username, status, form):
    run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING)
    response = client_as(getattr(world, username)).get(
        reverse("workflows:request", args=[catalog.request.pk])
    )
    assert response.status_code == status
    if status == 200:
        page = response.content.decode()
        assert "Evaluation gate" in page and "refund policy" in page
        assert ('value="approve"' in page) is form


@pytest.fixture
def adapter_scene(world, catalog, golden, gated, tmp_path, settings):
    from apps.registry.models import Provider
    from apps.registry.services import adapter_create, adapter_version_register, base_model_register

    model = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.VERTEX,
        model_id="gemini-2.5-flash",
        context_window=1024,
    )
    adapter = adapter_create(actor=world.eng, base_model=model, name="support-tone")
    version = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://artifacts/tone/1")
    return adapter, version


def test_an_alias_move_has_the_same_gate(world, catalog, golden, adapter_scene, client_as):
    from apps.registry.services import alias_move_request
    from apps.workflows.models import ApprovalRequest

    adapter, version = adapter_scene
    alias_move_request(actor=world.eng, adapter=adapter, alias="champion", version_number=1, reason="tone")
    approval = ApprovalRequest.objects.get(subject_kind="alias_move")
    gov = client_as(world.gov)
    url = reverse("workflows:request", args=[approval.pk])
    page = gov.get(url).content.decode()
    assert "Evaluation gate" in page and "No evaluation run on this content yet." in page
    assert "disabled" in approve_button(page)

    run_finish(
        version=catalog.approved, golden=golden, requester=world.eng, outputs=FAILING, adapter_version=version
    )
    page = gov.get(url).content.decode()
    assert "refund policy" in page and "disabled" in approve_button(page)
    run_finish(
        version=catalog.approved, golden=golden, requester=world.eng, outputs=PASSING, adapter_version=version
    )
    page = gov.get(url).content.decode()
    assert "Not passed" not in page and "disabled" not in approve_button(page)


def test_a_deployment_has_the_same_gate(world, catalog, golden, adapter_scene, client_as, settings, tmp_path):
    from apps.tuning.deployments import deployment_create, deployment_submit, endpoint_create

    settings.JOB_BACKEND = "local"
    settings.LOCAL_ENDPOINTS_DIR = str(tmp_path / "serving")
    _, version = adapter_scene
    endpoint = endpoint_create(actor=world.eng, team=world.support, name="support-bot")
    draft = deployment_create(
        actor=world.eng,
        endpoint=endpoint,
        adapter_version=version,
        strategy="replace",
        traffic_percent=None,
        justification="tone",
    )
    approval = deployment_submit(actor=world.eng, deployment=draft)
    run_finish(
        version=catalog.approved, golden=golden, requester=world.eng, outputs=FAILING, adapter_version=version
    )
    page = client_as(world.gov).get(reverse("workflows:request", args=[approval.pk])).content.decode()
    assert "Evaluation gate" in page and "no promises" in page and "disabled" in approve_button(page)


def test_the_panel_in_spanish(world, catalog, golden, gated, client_as):
    run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING)
    gov = client_as(world.gov)
    gov.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "es"
    page = review_page(gov, catalog)
    assert "Puerta de evaluación" in page and "No superada" in page and "Tasa de aprobados" in page
    assert "2 casos fallidos" in page and "REPLAY" in page


def test_a_posted_approval_is_refused_by_the_engine_and_says_why(world, catalog, golden, gated, client_as):
    """The disabled button is only a courtesy: a POST anyway is refused by the approval engine, and the page
    says why (never a 500); nothing is recorded."""
    run_finish(version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING)
    gov = client_as(world.gov)
    response = gov.post(
        reverse("workflows:decide", args=[catalog.request.pk]), {"decision": "approve"}, follow=True
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Not approved: the evaluation gate has not passed." in page and "pass rate" in page
    catalog.request.refresh_from_db()
    assert catalog.request.status == RequestStatus.OPEN and not catalog.request.decisions.exists()
    # Requesting changes is still possible.
    gov.post(
        reverse("workflows:decide", args=[catalog.request.pk]),
        {"decision": "request_changes", "comment": "fix"},
    )
    catalog.request.refresh_from_db()
    assert catalog.request.status == RequestStatus.CHANGES_REQUESTED


def test_a_regression_against_production_is_shown_and_blocks(world, catalog, golden, client_as):
    ApprovalPolicy.objects.create(
        team=world.support,
        subject_kind="prompt_version",
        requires_evaluation=True,
        evaluation_thresholds={"pass_rate": {"min": 0.3}, "max_regression": {"pass_rate": 0.1}},
    )
    production = run_finish(version=catalog.approved, golden=golden, requester=world.eng, outputs=PASSING)
    run = run_finish(
        version=catalog.in_review, golden=golden, requester=world.eng, outputs=FAILING, baseline=production
    )
    page = review_page(client_as(world.gov), catalog)
    # Its own threshold is met (0.33 ≥ 0.3), but it is 0.67 below production's 1.0, more than δ = 0.1.
    assert "Not passed" in page and "Pass rate, no worse than production" in page
    assert "≥ 0.9" in page and "0.3333" in page and "met" in page and "not met" in page
    assert reverse("evaluation_runs:regression", args=[run.pk]) in page
    assert "disabled" in approve_button(page)
