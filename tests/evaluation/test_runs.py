"""Evaluation runs through their services: started (validation, permission, the production baseline),
carried out against the replay provider and against the OpenAI-compatible fake through the real `openai`
client (scores, costs from the price table, the judge, partial failures, a provider that is down),
idempotent re-execution, recorded responses, the regression rows, and the beat's catch-up."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.common.exceptions import PermissionDenied, Unprocessable
from apps.costs.services import price_set
from apps.evaluation.golden_sets import golden_case_add, golden_set_create
from apps.evaluation.models import CaseResult, EvaluationRun, RecordedResponse, RunStatus
from apps.evaluation.runs import (
    evaluation_run_execute,
    evaluation_run_regression,
    evaluation_run_start,
    evaluation_runs_stalled,
    recorded_lookup,
)
from apps.registry.models import AdapterAlias, Provider
from apps.registry.services import adapter_create, adapter_version_register, base_model_register
from tests.evaluation.runs_helpers import CASES, GOOD, build_run_scene, make_judge, record, request_key
from workers.evaluation import catch_up

pytestmark = pytest.mark.django_db


@pytest.fixture
def scene(world):
    return build_run_scene(world)


def start(scene, version=None, **kwargs):
    kwargs.setdefault("provider", "replay")
    return evaluation_run_start(actor=scene.world.eng, prompt_version=version or scene.candidate, **kwargs)


def results(run):
    return {r.case.name: r for r in CaseResult.objects.filter(run=run).select_related("case")}


# Starting a run


def test_a_run_is_queued_with_the_production_version_as_its_baseline(
    scene, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = start(scene)

    assert run.status == RunStatus.QUEUED
    assert run.subject_hash == scene.candidate.content_hash
    assert run.golden_set_version == scene.golden_set.versions.get()
    assert run.cases_total == 3
    assert (run.model, run.parameters) == (scene.candidate.model, scene.candidate.parameters)
    baseline = run.baseline_run
    assert baseline is not None and baseline.prompt_version == scene.production
    assert baseline.golden_set_version == run.golden_set_version and baseline.provider == "replay"
    assert baseline.baseline_run is None
    assert sorted(enqueued) == sorted(
        [("workers.evaluation.run", (run.pk,)), ("workers.evaluation.run", (baseline.pk,))]
    )
    started = AuditEvent.objects.filter(action="evaluation.run_started").order_by("pk")
    assert [e.changes.get("role") for e in started] == ["production baseline", None]


def test_a_completed_baseline_is_reused_and_production_itself_has_none(scene):
    first = start(scene)
    evaluation_run_execute(run_id=first.baseline_run_id)
    again = start(scene)
    assert again.baseline_run_id == first.baseline_run_id
    assert EvaluationRun.objects.filter(prompt_version=scene.production).count() == 1

    other_model = start(scene, model="gemini-2.5-pro")
    assert other_model.baseline_run_id != first.baseline_run_id
    assert other_model.baseline_run.model == "gemini-2.5-pro"

    of_production = start(scene, version=scene.production)
    assert of_production.baseline_run is None


@pytest.mark.parametrize(
    ("kwargs", "code", "field"),
    [
        ({"provider": "acme"}, "unknown_provider", "provider"),
        ({"provider": "openai"}, "provider_not_configured", "provider"),
        ({"provider": "replay", "parameters": ["x"]}, "invalid_parameters", "parameters"),
    ],
)
def test_bad_starts_are_refused_naming_the_field(scene, settings, kwargs, code, field):
    settings.EVALUATION_OPENAI_BASE_URL = ""
    from apps.evaluation.providers import get_provider

    get_provider.cache_clear()
    with pytest.raises(Unprocessable) as refused:
        start(scene, **kwargs)
    assert (refused.value.code, refused.value.details) == (code, {"field": field})
    assert EvaluationRun.objects.count() == 0


def test_golden_sets_of_other_prompts_and_empty_ones_are_refused(scene, world):
    from tests.factories import make_prompt, make_version

    other = make_prompt(world.support, world.eng, name="farewell")
    make_version(other, world.eng)
    foreign = golden_set_create(
        actor=world.eng, team=world.support, name="farewell-set", prompt=other, cases=CASES
    )
    with pytest.raises(Unprocessable) as refused:
        start(scene, golden_set=foreign)
    assert refused.value.code == "golden_set_not_applicable"

    empty = golden_set_create(actor=world.eng, team=world.support, name="empty-shared", cases=[])
    with pytest.raises(Unprocessable) as refused:
        start(scene, golden_set=empty)
    assert refused.value.code == "golden_set_empty"
    assert EvaluationRun.objects.count() == 0


def test_a_prompt_without_a_golden_set_needs_one_named(world):
    from tests.factories import make_prompt, make_version

    prompt = make_prompt(world.support, world.eng, name="lonely")
    version = make_version(prompt, world.eng)
    with pytest.raises(Unprocessable) as refused:
        evaluation_run_start(actor=world.eng, prompt_version=version, provider="replay")
    assert refused.value.details == {"field": "golden_set"}


@pytest.mark.parametrize("user", ["owner", "ann1", "fin_eng"])
def test_only_editors_and_governance_start_runs(scene, user):
    with pytest.raises(PermissionDenied):
        evaluation_run_start(
            actor=getattr(scene.world, user), prompt_version=scene.candidate, provider="replay"
        )
    assert EvaluationRun.objects.count() == 0


@pytest.mark.parametrize("user", ["gov", "admin", "eng2"])
def test_governance_and_admins_start_runs(scene, user):
    run = evaluation_run_start(
        actor=getattr(scene.world, user), prompt_version=scene.candidate, provider="replay"
    )
    assert run.requested_by == getattr(scene.world, user)


def test_an_adapter_run_has_its_own_subject_and_the_champion_as_baseline(scene, world):
    base = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="acme/base",
        context_window=8192,
    )
    adapter = adapter_create(actor=world.eng, base_model=base, name="support-tone")
    v1 = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://a/1")
    v2 = adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://a/2")
    AdapterAlias.objects.create(adapter=adapter, name="champion", version=v1, moved_by=world.gov)

    run = start(scene, version=scene.production, adapter_version=v2)

    assert run.adapter_version == v2 and run.model == "support-tone-v2"
    assert run.parameters == scene.production.parameters
    assert run.subject_hash not in (scene.production.content_hash, "")
    assert run.baseline_run.adapter_version == v1
    assert run.baseline_run.prompt_version == scene.production
    assert run.baseline_run.subject_hash != run.subject_hash


@pytest.fixture
def adapter_v2(world):
    base = base_model_register(
        actor=world.eng,
        team=world.support,
        provider=Provider.HUGGING_FACE,
        model_id="acme/b",
        context_window=8,
    )
    adapter = adapter_create(actor=world.eng, base_model=base, name="tone")
    adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://a/1")
    return adapter_version_register(actor=world.eng, adapter=adapter, artifact_uri="gs://a/2")


def test_the_adapters_served_name_follows_the_setting(scene, adapter_v2, settings):
    settings.EVALUATION_ADAPTER_MODEL_NAME = "lora/{adapter}@{version}"
    assert start(scene, version=scene.production, adapter_version=adapter_v2).model == "lora/tone@2"


@pytest.mark.parametrize(
    "kwargs, field, code",
    [
        ({"model": "gemini-ultra"}, "model", "adapter_override"),
        ({"parameters": {"temperature": 0}}, "parameters", "adapter_override"),
        ({"version": "candidate"}, "prompt_version", "prompt_version_draft"),
    ],
)
def test_an_adapter_run_sets_no_model_nor_parameters_and_renders_a_frozen_version(
    scene, adapter_v2, kwargs, field, code
):
    version = scene.candidate if kwargs.pop("version", None) else scene.production
    with pytest.raises(Unprocessable) as exc:
        start(scene, version=version, adapter_version=adapter_v2, **kwargs)
    assert (exc.value.code, exc.value.details["field"]) == (code, field)
    assert not EvaluationRun.objects.exists()


@pytest.mark.parametrize(
    "overrides",
    [{"model": "fake-llm"}, {"model": "fake-llm", "parameters": {"temperature": 0.0}}],
)
def test_a_run_with_its_own_model_or_parameters_never_counts_for_the_gate(scene, live, overrides):
    from apps.evaluation.gates import prompt_version_verdict

    run = evaluation_run_execute(run_id=start(scene, provider="openai", **overrides).pk)

    assert run.status == RunStatus.COMPLETED and run.summary["passed"] == 3
    assert run.subject_hash != scene.candidate.content_hash
    assert run.counts_for_gate is False and run.overrides_version is True
    verdict = prompt_version_verdict(scene.candidate, {"pass_rate": {"min": 0.9}})
    assert verdict.passed is False and verdict.runs[0].run is None

    record(scene.world, scene.candidate, GOOD)
    plain = evaluation_run_execute(run_id=start(scene).pk)
    assert plain.counts_for_gate is True and plain.subject_hash == scene.candidate.content_hash
    assert prompt_version_verdict(scene.candidate, {"pass_rate": {"min": 0.9}}).passed is True


def test_parameters_of_its_own_alone_make_a_run_not_count(scene):
    run = start(scene, parameters={"temperature": 0.0})
    assert scene.candidate.parameters != {"temperature": 0.0}
    assert run.subject_hash != scene.candidate.content_hash and run.counts_for_gate is False


def test_a_draft_edited_while_its_run_waits_fails_the_run_and_passes_no_gate(scene):
    from apps.catalog.services import prompt_version_update
    from apps.evaluation.gates import prompt_version_verdict

    record(scene.world, scene.candidate, GOOD)
    run = start(scene)
    edited = prompt_version_update(
        actor=scene.world.eng,
        version=scene.candidate,
        messages=[{"role": "user", "template": "{{ question }} ({{ company }})"}],
        model=scene.candidate.model,
        parameters=scene.candidate.parameters,
    )
    record(scene.world, edited, GOOD)

    run = evaluation_run_execute(run_id=run.pk)

    assert run.status == RunStatus.FAILED and run.passed is False
    assert run.error == "The version's content changed after the run started: start a new run."
    assert not CaseResult.objects.filter(run=run).exists()
    assert prompt_version_verdict(edited, {"pass_rate": {"min": 0.0}}).passed is False


def test_a_draft_edited_while_its_run_runs_fails_the_run_before_it_completes(scene, monkeypatch):
    from apps.catalog.services import prompt_version_update
    from apps.evaluation import runs as runs_module

    record(scene.world, scene.candidate, GOOD)
    run = start(scene)
    real_write = runs_module._write_batch

    def write_then_edit(*args, **kwargs):
        real_write(*args, **kwargs)
        prompt_version_update(
            actor=scene.world.eng,
            version=scene.candidate,
            messages=[{"role": "user", "template": "{{ question }} ({{ company }})"}],
            model=scene.candidate.model,
        )

    monkeypatch.setattr(runs_module, "_write_batch", write_then_edit)
    run = evaluation_run_execute(run_id=run.pk)

    assert run.status == RunStatus.FAILED and run.passed is False
    assert run.error == "The version's content changed after the run started: start a new run."


# Carrying out: replay


def test_a_replay_run_answers_from_recordings_and_scores_every_case(scene):
    record(scene.world, scene.candidate, GOOD)
    run = start(scene)

    done = evaluation_run_execute(run_id=run.pk)

    assert done.status == RunStatus.COMPLETED and done.is_replay
    by_name = results(done)
    assert {name: r.passed for name, r in by_name.items()} == {
        "refund": True,
        "greeting": True,
        "invoice": True,
    }
    assert by_name["refund"].output == "Yes, within 30 days."
    assert by_name["refund"].metrics["exact_match"] is True and by_name["refund"].metrics["rouge_l"] == 1.0
    assert by_name["greeting"].latency_ms == 150 and by_name["greeting"].tokens_in == 12
    assert by_name["refund"].request_key == request_key(scene.candidate, CASES[0]["variables"])
    assert done.summary["pass_rate"] == 1.0 and done.summary["cases"] == 3
    assert done.cases_done == 3 and done.finished_at is not None
    assert AuditEvent.objects.filter(action="evaluation.run_completed", target_id=str(run.pk)).count() == 1
    assert RecordedResponse.objects.count() == 3, "a replay run records nothing new"


def test_a_case_without_a_recording_is_an_error_on_that_case_only(scene):
    record(scene.world, scene.candidate, {k: v for k, v in GOOD.items() if k != "Hello"})
    run = evaluation_run_execute(run_id=start(scene).pk)

    by_name = results(run)
    assert run.status == RunStatus.COMPLETED
    assert "no recorded response" in by_name["greeting"].error and not by_name["greeting"].passed
    assert by_name["refund"].passed and by_name["invoice"].passed
    assert run.summary["errors"] == 1 and run.summary["passed"] == 2


def test_failed_checks_are_listed_per_case(scene):
    record(scene.world, scene.candidate, {**GOOD, "Where is my invoice?": "Send us your password."})
    run = evaluation_run_execute(run_id=start(scene).pk)

    invoice = results(run)["invoice"]
    assert not invoice.passed and invoice.error == ""
    assert invoice.failures == [
        "missing the phrase “billing page”",
        "contains the forbidden phrase “password”",
    ]
    assert run.summary["failed"] == 1


def test_a_render_error_is_an_error_on_that_case_and_variables_the_version_does_not_use_are_left_out(
    scene, world
):
    version = scene.golden_set.versions.get()
    cases = [
        # a variable the version needs and the case lacks: an error on that case
        {"name": "missing variable", "variables": {"company": "Acme"}, "must_contain": ["Hi"]},
        # a variable of a later version that this one does not use: left out, the case renders
        {
            "name": "extra variable",
            "variables": {"company": "Acme", "question": "Hello", "mood": "x"},
            "must_contain": ["Hello"],
        },
    ]
    for number, case in enumerate(cases, start=version.number):
        golden_case_add(actor=world.eng, golden_set=scene.golden_set, case=case, base_version=number)
    record(scene.world, scene.candidate, GOOD)
    run = evaluation_run_execute(run_id=start(scene).pk)

    by_name = results(run)
    assert by_name["missing variable"].error == "render: missing variable: question"
    assert by_name["extra variable"].error == ""
    assert by_name["extra variable"].passed
    assert "mood" not in str(by_name["extra variable"].rendered)
    assert run.status == RunStatus.COMPLETED and run.summary["errors"] == 1


def test_re_executing_a_run_writes_no_duplicates(scene):
    record(scene.world, scene.candidate, GOOD)
    run = start(scene)
    evaluation_run_execute(run_id=run.pk)
    evaluation_run_execute(run_id=run.pk)

    assert CaseResult.objects.filter(run=run).count() == 3
    assert AuditEvent.objects.filter(action="evaluation.run_completed", target_id=str(run.pk)).count() == 1


# Carrying out: the OpenAI-compatible fake, through the real client


@pytest.fixture
def live(scene, openai_settings, openai_fake):
    openai_fake.answers.update(GOOD)
    return openai_fake


def test_an_interrupted_run_carries_on_without_calling_again_for_done_cases(scene, live):
    run = start(scene, provider="openai", model="fake-llm")
    evaluation_run_execute(run_id=run.pk)
    assert len(live.bodies()) == 3

    # A worker died after writing one case's result: the run is still running, two cases left.
    CaseResult.objects.filter(run=run).exclude(case__name="refund").delete()
    EvaluationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, finished_at=None, summary={})
    live.reset()
    again = evaluation_run_execute(run_id=run.pk)

    assert sorted(body["messages"][-1]["content"] for body in live.bodies()) == [
        "Hello",
        "Where is my invoice?",
    ]
    assert CaseResult.objects.filter(run=run).count() == 3
    assert again.status == RunStatus.COMPLETED and again.summary["passed"] == 3


def test_live_answers_are_scored_costed_and_recorded_for_replay(scene, live, world):
    price_set(
        actor=world.admin,
        key="fake-llm",
        effective_from=timezone.now() - timedelta(days=1),
        input_per_1k=Decimal("0.5"),
        output_per_1k=Decimal("2"),
    )
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)

    refund = results(run)["refund"]
    assert refund.output == "Yes, within 30 days." and refund.passed
    # The fake counts words as tokens: the system and user messages in, the answer out.
    assert (refund.tokens_in, refund.tokens_out) == (8 + 5, 4)
    assert refund.cost == (Decimal("0.5") * 13 + Decimal("2") * 4) / 1000
    assert refund.attempts == 1
    # The fake has an embedding model: similarity to the reference (the answer is the reference).
    assert refund.metrics["embedding_similarity"] == pytest.approx(1.0)
    total = sum(r.cost for r in CaseResult.objects.filter(run=run))
    assert run.summary["cost"]["total"] == pytest.approx(float(total))

    assert RecordedResponse.objects.filter(team=world.support).count() == 3
    live.reset()
    replayed = evaluation_run_execute(
        run_id=start(scene, provider="replay", model="fake-llm", parameters=run.parameters).pk
    )
    assert live.bodies() == [], "the replay called no model"
    assert {n: r.output for n, r in results(replayed).items()} == {
        n: r.output for n, r in results(run).items()
    }


def test_an_unpriced_model_has_no_cost_rather_than_zero(scene, live):
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)
    assert {r.cost for r in CaseResult.objects.filter(run=run)} == {None}
    assert run.summary["cost"]["total"] is None


def test_a_refused_call_is_an_error_on_its_case_and_the_run_goes_on(scene, live, settings):
    live.fail_next(1, status=400)
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)

    errors = [r for r in CaseResult.objects.filter(run=run) if r.error]
    assert run.status == RunStatus.COMPLETED
    assert len(errors) == 1 and "Invalid request" in errors[0].error
    assert run.summary["errors"] == 1 and run.summary["passed"] == 2


def test_a_transient_failure_is_retried(scene, live, settings):
    settings.EVALUATION_RETRY_BASE_SECONDS = 0.01
    live.fail_next(2, status=503)
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)
    assert run.summary["passed"] == 3
    assert sum(r.attempts for r in CaseResult.objects.filter(run=run)) == 5


def test_a_provider_that_is_down_fails_the_run_with_its_error(scene, live, settings):
    settings.EVALUATION_MAX_ATTEMPTS = 1
    live.fail_next(10, status=503)
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)

    assert run.status == RunStatus.FAILED
    assert run.error.startswith("provider unavailable:") and "overloaded" in run.error
    assert AuditEvent.objects.filter(action="evaluation.run_failed", target_id=str(run.pk)).exists()
    assert evaluation_run_execute(run_id=run.pk).status == RunStatus.FAILED  # a finished run is left alone


# The judge


JUDGE_CASES = [
    {"name": "polite", "variables": {"company": "Acme", "question": "Thanks"}, "rubric": "Polite and brief."},
    {"name": "rude", "variables": {"company": "Acme", "question": "Help"}, "rubric": "Polite and brief."},
]


def test_the_judge_scores_rubric_cases_and_a_malformed_verdict_is_that_cases_error(
    world, openai_settings, openai_fake
):
    scene = build_run_scene(world, cases=JUDGE_CASES)
    judge = make_judge(world)

    def respond(body):
        messages = body["messages"]
        if "strict evaluator" in messages[0]["content"]:
            answer = messages[-1]["content"]
            return '{"score": 5, "reason": "Polite."}' if "You are welcome" in answer else "Looks fine to me!"
        return "You are welcome." if messages[-1]["content"] == "Thanks" else "No."

    openai_fake.responder = respond
    run = evaluation_run_execute(run_id=start(scene, provider="openai", model="fake-llm").pk)

    by_name = results(run)
    assert run.status == RunStatus.COMPLETED and run.judge_prompt_version == judge
    assert by_name["polite"].judge_score == 5 and by_name["polite"].judge_reason == "Polite."
    assert by_name["polite"].metrics["judge_score"] == 5 and by_name["polite"].passed
    assert by_name["rude"].error.startswith("judge answer malformed: no JSON object with a score")
    assert by_name["rude"].judge_score is None and not by_name["rude"].passed
    assert run.summary["metrics"]["judge_score"]["mean"] == 5
    judge_bodies = [b for b in openai_fake.bodies() if "strict evaluator" in b["messages"][0]["content"]]
    assert len(judge_bodies) == 2
    assert "Rubric:\nPolite and brief." in judge_bodies[0]["messages"][1]["content"]
    # The judge's live answers are recorded too, so that a replay judges the same way.
    assert RecordedResponse.objects.filter(source__endswith="(judge)").count() == 2


def test_without_a_judge_prompt_rubric_cases_are_errors(world):
    scene = build_run_scene(world, cases=JUDGE_CASES)
    from tests.evaluation.runs_helpers import rendered

    rows = [
        {
            "model": scene.candidate.model,
            "messages": rendered(scene.candidate, c["variables"]),
            "parameters": scene.candidate.parameters,
            "text": "Hi",
        }
        for c in JUDGE_CASES
    ]
    from apps.evaluation.runs import recorded_responses_import

    recorded_responses_import(team=world.support, rows=rows, source="test")
    run = evaluation_run_execute(run_id=start(scene).pk)
    assert {r.error.split(":")[0] for r in CaseResult.objects.filter(run=run)} == {"judge"}
    assert "atalaya-judge" in CaseResult.objects.filter(run=run).first().error


# Regression against production


def test_regression_rows_set_the_candidate_beside_production_regressions_first(scene):
    record(scene.world, scene.production, GOOD)
    record(scene.world, scene.candidate, {**GOOD, "Where is my invoice?": "Open the settings page."})
    run = start(scene)
    evaluation_run_execute(run_id=run.baseline_run_id)
    evaluation_run_execute(run_id=run.pk)

    rows = evaluation_run_regression(run=run)

    assert [(row.case.name, row.kind) for row in rows] == [
        ("invoice", "regressed"),
        ("refund", "same"),
        ("greeting", "same"),
    ]
    assert "<del>billing</del>" in rows[0].baseline_html and "<ins>settings</ins>" in rows[0].candidate_html
    assert rows[1].baseline_html == rows[1].candidate_html == "Yes, within 30 days."


def test_regression_output_is_escaped(scene):
    record(scene.world, scene.production, {**GOOD, "Hello": "Hello <b>there</b>"})
    record(scene.world, scene.candidate, {**GOOD, "Hello": "Hello <script>x</script>"})
    run = start(scene)
    evaluation_run_execute(run_id=run.baseline_run_id)
    evaluation_run_execute(run_id=run.pk)
    greeting = next(row for row in evaluation_run_regression(run=run) if row.case.name == "greeting")
    assert "<script>" not in greeting.candidate_html
    assert greeting.candidate_html == "Hello &lt;<ins>script</ins>&gt;<ins>x</ins>&lt;/<ins>script</ins>&gt;"


# Recorded responses


def test_recordings_are_imported_from_jsonl_and_replace_older_ones(scene, tmp_path, world):
    rendered_messages = [{"role": "user", "content": "Hello"}]
    path = tmp_path / "recorded.jsonl"
    path.write_text(
        json.dumps({"model": "m", "messages": rendered_messages, "parameters": {}, "text": "one"})
        + "\n\n"
        + json.dumps(
            {"model": "m", "messages": rendered_messages, "parameters": {}, "text": "two", "tokens_out": 1}
        )
        + "\n"
    )
    call_command("evaluation_record_import", str(path), "--team", "support")

    stored = RecordedResponse.objects.get()
    assert stored.text == "two" and stored.tokens_out == 1
    from apps.evaluation.providers import ModelRequest

    key = ModelRequest(model="m", messages=rendered_messages, parameters={}).key()
    assert stored.key == key
    assert recorded_lookup(team_id=world.support.pk)(key).text == "two"
    assert recorded_lookup(team_id=world.finance.pk)(key) is None, "recordings are per team"
    assert recorded_lookup(team_id=world.support.pk, keys=[key])(key).text == "two"  # read ahead, at once
    assert recorded_lookup(team_id=world.finance.pk, keys=[key])(key) is None
    assert AuditEvent.objects.filter(action="evaluation.responses_imported").count() == 1


def test_a_bad_line_imports_nothing_and_names_itself(tmp_path, world):
    path = tmp_path / "bad.jsonl"
    good = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "text": "ok"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, "text": 3}) + "\n")
    with pytest.raises(CommandError, match=r"line 2: 'text' must be a text"):
        call_command("evaluation_record_import", str(path), "--team", "support")
    path.write_text(json.dumps(good) + "\n{oops\n")
    with pytest.raises(CommandError, match="line 2: not JSON"):
        call_command("evaluation_record_import", str(path), "--team", "support")
    with pytest.raises(CommandError, match="No team"):
        call_command("evaluation_record_import", str(path), "--team", "nowhere")
    assert RecordedResponse.objects.count() == 0


# Beat


def test_beat_sends_again_the_runs_whose_task_was_lost(scene, enqueued):
    now = timezone.now()
    fresh = start(scene, version=scene.production)
    waiting = start(scene, version=scene.production, model="waiting")
    lost = start(scene, version=scene.production, model="other")
    leased = start(scene, version=scene.production, model="leased")
    expired = start(scene, version=scene.production, model="expired")
    old = start(scene, version=scene.production, model="from-before-leases")
    EvaluationRun.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(minutes=2))
    EvaluationRun.objects.filter(pk=lost.pk).update(created_at=now - timedelta(minutes=6))
    EvaluationRun.objects.filter(pk__in=[leased.pk, expired.pk, old.pk]).update(status=RunStatus.RUNNING)
    # Silent for an hour but its lease runs: a worker is still on it (a long call).
    EvaluationRun.objects.filter(pk=leased.pk).update(
        lease_until=now + timedelta(minutes=1), updated_at=now - timedelta(hours=1)
    )
    EvaluationRun.objects.filter(pk=expired.pk).update(lease_until=now - timedelta(seconds=1))
    EvaluationRun.objects.filter(pk=old.pk).update(updated_at=now - timedelta(hours=1))
    enqueued.clear()

    assert evaluation_runs_stalled() == [lost.pk, expired.pk, old.pk]
    assert catch_up() == 3
    assert enqueued == [("workers.evaluation.run", (pk,)) for pk in (lost.pk, expired.pk, old.pk)]
    assert {fresh.pk, waiting.pk, leased.pk}.isdisjoint(evaluation_runs_stalled())


def test_a_run_whose_lease_another_worker_holds_is_left_to_it(scene, live):
    run = start(scene, provider="openai", model="fake-llm")
    held_until = timezone.now() + timedelta(minutes=3)
    EvaluationRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_until=held_until)

    again = evaluation_run_execute(run_id=run.pk)

    assert live.bodies() == []
    assert again.status == RunStatus.RUNNING and again.lease_until == held_until
    assert not CaseResult.objects.filter(run=run).exists()


def test_a_replay_run_whose_lease_is_held_reads_no_recording(scene, django_assert_max_num_queries):
    record(scene.world, scene.candidate, GOOD)
    run = start(scene)
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, lease_until=timezone.now() + timedelta(minutes=3)
    )
    with django_assert_max_num_queries(3) as captured:
        evaluation_run_execute(run_id=run.pk)
    assert not any("recordedresponse" in q["sql"].lower() for q in captured.captured_queries)


def test_an_expired_lease_is_taken_over_and_cleared_at_the_end(scene, live):
    run = start(scene, provider="openai", model="fake-llm")
    EvaluationRun.objects.filter(pk=run.pk).update(
        status=RunStatus.RUNNING, lease_until=timezone.now() - timedelta(seconds=1)
    )

    done = evaluation_run_execute(run_id=run.pk)

    assert len(live.bodies()) == 3
    assert done.status == RunStatus.COMPLETED and done.lease_until is None


def test_a_worker_renews_its_lease_and_stops_when_another_took_the_run_over(scene, live, monkeypatch):
    from apps.evaluation import runs as runs_module

    monkeypatch.setattr(runs_module, "BATCH_SIZE", 1)
    run = start(scene, provider="openai", model="fake-llm")
    seen = []
    real_write = runs_module._write_batch

    def write_and_look(run_, *args, **kwargs):
        seen.append(EvaluationRun.objects.get(pk=run_.pk).lease_until)
        real_write(run_, *args, **kwargs)
        if len(seen) == 2:  # this worker went silent; another took the run over
            EvaluationRun.objects.filter(pk=run_.pk).update(lease_until=timezone.now() + timedelta(hours=1))

    monkeypatch.setattr(runs_module, "_write_batch", write_and_look)
    left = evaluation_run_execute(run_id=run.pk)

    assert seen[0] is not None and seen[1] > seen[0]  # renewed with every batch
    assert len(seen) == 2 and CaseResult.objects.filter(run=run).count() == 2
    assert left.status == RunStatus.RUNNING  # the other worker finishes it


# The worker


def test_the_worker_task_carries_out_a_run_once(scene):
    from workers.evaluation import run_evaluation

    record(scene.world, scene.candidate, GOOD)
    run = start(scene)
    assert run_evaluation(run.pk) == "completed"
    assert run_evaluation(run.pk) == "completed"
    assert CaseResult.objects.filter(run=run).count() == 3
    assert run_evaluation(999_999) == "gone"


def test_a_completed_run_records_the_gate_outcome(scene):
    from apps.workflows.models import ApprovalPolicy

    ApprovalPolicy.objects.update_or_create(
        subject_kind="prompt_version",
        team=scene.world.support,
        defaults={"requires_evaluation": True, "evaluation_thresholds": {"pass_rate": {"min": 0.9}}},
    )
    record(scene.world, scene.candidate, {**GOOD, "Hello": "Goodbye."})
    run = evaluation_run_execute(run_id=start(scene).pk)

    assert run.passed is False
    assert [(c["name"], c["passed"]) for c in run.gate["checks"]] == [("pass_rate", False)]
    completed = AuditEvent.objects.get(action="evaluation.run_completed", target_id=str(run.pk))
    assert completed.changes["passed"] is False
