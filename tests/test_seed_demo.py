from django.core.management import call_command

from apps.accounts.models import ApiToken, Membership, User
from apps.audit.services import audit_chain_verify
from apps.catalog.models import PromptLabel, VersionStatus
from apps.evaluation.gates import gate_verdict
from apps.evaluation.models import EvaluationRun, GoldenSet
from apps.feedback.models import AnnotationQueue, EndUserFeedback
from apps.logs.models import EventState, LogEvent
from apps.registry.models import Adapter, AdapterAlias
from apps.tuning.models import Deployment
from apps.workflows.models import ApprovalRequest


def test_seed_demo_builds_the_demo_organisation_once(db, capsys):
    call_command("seed_demo")
    out = capsys.readouterr().out
    for username in ("admin", "gov", "gov2", "eng", "eng2", "owner", "ann1", "ann2"):
        assert username in out
        assert User.objects.get(username=username).check_password("demo")
    roles = set(Membership.objects.values_list("user__username", "team__slug", "role"))
    assert ("eng2", "finance", "engineer") in roles and ("gov", "support", "governance") in roles
    assert {team for user, team, _ in roles if user != "eng2"} == {"support"}
    token_line = next(line.strip() for line in out.splitlines() if line.strip().startswith("atl_"))
    assert ApiToken.objects.count() == 1 and not ApiToken.objects.filter(token_hash=token_line).exists()

    production = PromptLabel.objects.get(prompt__name="support-reply", name="production")
    assert production.version.number == 1 and production.version.status == VersionStatus.APPROVED
    assert ApprovalRequest.objects.filter(status="open").count() == 2  # v2 and v3 wait for governance
    assert LogEvent.objects.filter(state=EventState.STORED).count() == 240
    assert not any("@example.com" in (e.input[1]["content"]) for e in LogEvent.objects.all())
    champion = AdapterAlias.objects.get(adapter__name="support-tone", name="champion")
    assert champion.version.number == 1 and champion.adapter.versions.count() == 2
    live = Deployment.objects.get(endpoint__name="support-chat")
    assert live.status == "promoted" and live.adapter_version == champion.version
    assert Adapter.objects.filter(name="demo-tone", base_model__model_id="tiny").exists()
    queue = AnnotationQueue.objects.get(name="support-weekly")
    assert queue.item_count == 20 and queue.overlap == 2
    assert set(queue.assignees.values_list("username", flat=True)) == {"ann1", "ann2"}
    assert EndUserFeedback.objects.count() == 80
    golden = GoldenSet.objects.get(name="support-reply-basics")
    assert golden.prompt.name == "support-reply"
    cases = list(golden.versions.get(number=1).cases.all())
    assert len(cases) == 8 and all(set(c.variables) == {"company", "tier", "question"} for c in cases)
    assert any(c.json_schema for c in cases) and any(c.regex for c in cases) and any(c.rubric for c in cases)
    # Replay runs on the golden set: v2 passes every case, the draft v3 fails most; production (v1) is v2's
    # baseline. The judge prompt graded the rubric cases from its recorded verdicts.
    runs = {
        run.prompt_version.number: run
        for run in EvaluationRun.objects.filter(prompt_version__prompt__name="support-reply")
    }
    assert set(runs) == {1, 2, 3} and all(
        run.status == "completed" and run.is_replay for run in runs.values()
    )
    assert runs[2].summary["pass_rate"] == 1.0 and runs[2].baseline_run == runs[1]
    assert runs[2].summary["metrics"]["judge_score"]["mean"] == 5.0
    assert runs[3].summary["passed"] == 2 and runs[3].summary["errors"] == 0
    assert runs[2].judge_prompt_version.prompt.name == "atalaya-judge"
    # support's policy requires the gate: v2 (in review) passes it, v3 (in review too) is refused
    verdicts = {
        n: gate_verdict(subject_kind="prompt_version", subject=runs[n].prompt_version, team=golden.team)
        for n in (2, 3)
    }
    assert verdicts[2].passed and not verdicts[3].passed
    assert "pass rate 0.25 is below the required minimum of 0.9" in verdicts[3].reason
    assert runs[3].prompt_version.status == "in_review"
    assert audit_chain_verify().ok

    call_command("seed_demo")
    assert "already present" in capsys.readouterr().out
    assert LogEvent.objects.count() == 240 and User.objects.count() == 8
