"""The evaluation run pages: who sees a run, what its page shows (progress refreshing while it runs, the
summary, failing and errored cases, the REPLAY badge), the regression view beside production, starting a
run from the version page, and the runs' history on the prompt page."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.evaluation.models import EvaluationRun, RunStatus
from apps.evaluation.runs import evaluation_run_execute, evaluation_run_start
from tests.evaluation.runs_helpers import GOOD, build_run_scene, record

pytestmark = pytest.mark.django_db


def client_for(world, username: str) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


@pytest.fixture
def scene(world):
    return build_run_scene(world)


@pytest.fixture
def run(scene):
    """A completed replay run of the candidate with one failed case and one errored case, beside a completed
    run of production where every case passed."""
    record(scene.world, scene.production, GOOD)
    answers = {**GOOD, "Where is my invoice?": "Send your password."}
    record(scene.world, scene.candidate, {q: a for q, a in answers.items() if q != "Hello"})
    started = evaluation_run_start(actor=scene.world.eng, prompt_version=scene.candidate, provider="replay")
    evaluation_run_execute(run_id=started.baseline_run_id)
    return evaluation_run_execute(run_id=started.pk)


@pytest.mark.parametrize(
    ("username", "status"),
    [
        ("anon", 302),
        ("admin", 200),
        ("gov", 200),
        ("eng", 200),
        ("owner", 200),
        ("ann1", 404),
        ("fin_eng", 404),
    ],
)
@pytest.mark.parametrize("page", ["run", "regression"])
def test_who_sees_a_run(run, scene, username, status, page):
    response = client_for(scene.world, username).get(reverse(f"evaluation_runs:{page}", args=[run.pk]))
    assert response.status_code == status


def test_the_run_page_shows_the_summary_failures_errors_and_the_replay_badge(run, scene):
    page = client_for(scene.world, "gov").get(reverse("evaluation_runs:run", args=[run.pk])).content.decode()

    assert "REPLAY" in page
    assert 'data-metric="pass_rate">33.3 %' in page
    assert "contains the forbidden phrase “password”" in page
    assert "no recorded response for this request" in page
    assert 'data-case="1" class=""' in page
    assert 'data-case="2" class="case-error"' in page
    assert 'data-case="3" class="case-failed"' in page
    assert "hx-trigger" not in page, "a finished run does not refresh itself"


def test_the_case_filter_narrows_to_errors(run, scene):
    page = client_for(scene.world, "eng").get(reverse("evaluation_runs:run", args=[run.pk]) + "?only=errors")
    content = page.content.decode()
    assert 'data-case="2"' in content and 'data-case="1"' not in content and 'data-case="3"' not in content


def test_a_running_runs_progress_refreshes_until_it_ends(scene):
    queued = evaluation_run_start(actor=scene.world.eng, prompt_version=scene.candidate, provider="replay")
    client = client_for(scene.world, "eng")
    url = reverse("evaluation_runs:run", args=[queued.pk])

    page = client.get(url).content.decode()
    assert 'hx-trigger="every 2s"' in page and "0 of 3 cases" in page
    panel = client.get(url, HTTP_HX_REQUEST="true")
    assert panel.status_code == 200 and 'id="run-progress"' in panel.content.decode()
    assert "<html" not in panel.content.decode()

    evaluation_run_execute(run_id=queued.pk)
    ended = client.get(url, HTTP_HX_REQUEST="true")
    assert ended.headers["HX-Refresh"] == "true"


def test_a_failed_run_shows_why(scene, settings):
    settings.EVALUATION_OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # nothing listens there
    settings.EVALUATION_MAX_ATTEMPTS = 1
    from apps.evaluation.providers import get_provider

    get_provider.cache_clear()
    started = evaluation_run_start(
        actor=scene.world.eng, prompt_version=scene.candidate, provider="openai", model="fake-llm"
    )
    failed = evaluation_run_execute(run_id=started.pk)
    get_provider.cache_clear()
    assert failed.status == RunStatus.FAILED
    page = (
        client_for(scene.world, "eng").get(reverse("evaluation_runs:run", args=[failed.pk])).content.decode()
    )
    assert "The run failed:" in page and "provider unavailable" in page
    assert "REPLAY" not in page


def test_the_regression_view_sets_the_candidate_beside_production(run, scene):
    page = (
        client_for(scene.world, "gov")
        .get(reverse("evaluation_runs:regression", args=[run.pk]))
        .content.decode()
    )

    # The failed case and the errored one (no recording) both regressed: they come first.
    assert "2 regressions" in page and "0 improvements" in page
    assert page.index('data-case="2"') < page.index('data-case="3"') < page.index('data-case="1"')
    start = page.index('data-case="3"')
    row = page[start : page.index("</tr>", start)]
    assert "<del>Open</del> <del>the</del> <del>billing page and download it</del>." in row
    assert "<ins>Send</ins> <ins>your</ins> <ins>password</ins>." in row
    start = page.index('data-case="2"')
    assert "no recorded response" in page[start : page.index("</tr>", start)]
    assert "REPLAY" in page


def test_the_version_page_offers_the_run_form_to_those_who_may_start_runs(scene):
    url = reverse("catalog:version", args=["support", "greeting", scene.candidate.number])
    for username in ("eng", "gov"):
        assert "Run evaluation" in client_for(scene.world, username).get(url).content.decode()
    assert "Run evaluation" not in client_for(scene.world, "owner").get(url).content.decode()


def test_starting_a_run_from_the_version_page(scene, enqueued, django_capture_on_commit_callbacks):
    url = reverse("evaluation_runs:start", args=[scene.candidate.pk])
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(scene.world, "eng").post(
            url, {"golden_set": scene.golden_set.pk, "provider": "replay", "model": ""}
        )
    run = EvaluationRun.objects.get(prompt_version=scene.candidate)
    assert response.status_code == 302 and response["Location"] == reverse(
        "evaluation_runs:run", args=[run.pk]
    )
    assert run.provider == "replay" and run.requested_by == scene.world.eng
    assert ("workers.evaluation.run", (run.pk,)) in enqueued


@pytest.mark.parametrize(("username", "status"), [("owner", 302), ("ann1", 404), ("fin_eng", 404)])
def test_those_who_may_not_start_runs_start_none(scene, username, status):
    response = client_for(scene.world, username).post(
        reverse("evaluation_runs:start", args=[scene.candidate.pk]), {"provider": "replay"}
    )
    assert response.status_code == status
    assert EvaluationRun.objects.count() == 0


def test_a_refused_start_says_why_on_the_version_page(scene, settings):
    settings.EVALUATION_OPENAI_BASE_URL = ""
    from apps.evaluation.providers import get_provider

    get_provider.cache_clear()
    client = client_for(scene.world, "eng")
    response = client.post(
        reverse("evaluation_runs:start", args=[scene.candidate.pk]), {"provider": "openai"}, follow=True
    )
    assert "The openai provider is not configured" in response.content.decode()
    assert EvaluationRun.objects.count() == 0


def test_the_prompt_page_lists_the_runs(run, scene):
    page = (
        client_for(scene.world, "owner")
        .get(reverse("catalog:prompt", args=["support", "greeting"]))
        .content.decode()
    )
    assert "Evaluation runs" in page
    assert reverse("evaluation_runs:run", args=[run.pk]) in page
    assert reverse("evaluation_runs:run", args=[run.baseline_run_id]) in page


def test_the_pages_speak_spanish(run, scene):
    client = client_for(scene.world, "gov")
    client.cookies["django_language"] = "es"
    page = client.get(
        reverse("evaluation_runs:run", args=[run.pk]), HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()
    assert "Tasa de aprobados" in page and "REPETICIÓN" in page


def test_the_regression_view_is_paginated_and_diffs_only_the_page_shown(run, scene, monkeypatch):
    from apps.catalog.selectors import _word_diff
    from apps.evaluation import runs as runs_module
    from apps.evaluation import views_runs

    diffed = []

    def counting_diff(left, right):
        diffed.append((left, right))
        return _word_diff(left, right)

    monkeypatch.setattr(views_runs, "REGRESSION_PAGE_SIZE", 2)
    monkeypatch.setattr(runs_module, "_word_diff", counting_diff)
    client = client_for(scene.world, "gov")
    url = reverse("evaluation_runs:regression", args=[run.pk])

    first = client.get(url).content.decode()
    assert len(diffed) == 2
    assert 'data-case="2"' in first and 'data-case="3"' in first and 'data-case="1"' not in first
    assert "2 regressions" in first and "Page 1 of 2" in first

    second = client.get(url, {"page": 2}).content.decode()
    assert 'data-case="1"' in second and 'data-case="2"' not in second
    assert "2 regressions" in second and "Page 2 of 2" in second
    assert len(diffed) == 3


def test_a_run_with_its_own_model_says_it_does_not_count_for_the_gate(scene, run):
    record(scene.world, scene.candidate, GOOD, model="other-model")
    other = evaluation_run_start(
        actor=scene.world.eng, prompt_version=scene.candidate, provider="replay", model="other-model"
    )
    other = evaluation_run_execute(run_id=other.pk)
    client = client_for(scene.world, "eng")

    page = client.get(reverse("evaluation_runs:run", args=[other.pk])).content.decode()
    assert "Model or parameters differ from the version: this run does not count for the gate." in page
    plain = client.get(reverse("evaluation_runs:run", args=[run.pk])).content.decode()
    assert 'id="gate-note"' not in plain
    prompt = scene.candidate.prompt
    form = client.get(
        reverse("catalog:version", args=[prompt.team.slug, prompt.name, scene.candidate.number])
    ).content.decode()
    assert "A run on another model does not count for the gate." in form

    client.cookies["django_language"] = "es"
    spanish = client.get(
        reverse("evaluation_runs:run", args=[other.pk]), headers={"accept-language": "es"}
    ).content.decode()
    assert "El modelo o los parámetros difieren de los de la versión" in spanish


def test_the_run_pages_gate_is_judged_under_todays_policy(run, scene):
    from apps.workflows.models import ApprovalPolicy, SubjectKind

    def gate_box():
        page = (
            client_for(scene.world, "gov").get(reverse("evaluation_runs:run", args=[run.pk])).content.decode()
        )
        return page[page.index('id="gate-heading"') :]

    ApprovalPolicy.objects.create(
        subject_kind=SubjectKind.PROMPT_VERSION,
        team=scene.world.support,
        requires_evaluation=True,
        evaluation_thresholds={"pass_rate": {"min": 0.3}},
    )
    assert "pass rate 0.3333 meets the required ≥ 0.3" in gate_box()
    ApprovalPolicy.objects.filter(team=scene.world.support).update(
        evaluation_thresholds={"pass_rate": {"min": 0.9}}
    )
    assert "pass rate 0.3333 is below the required minimum of 0.9" in gate_box()
