"""What the evaluation-run tests share: a prompt with production on v1 and a candidate v2, a golden set of
the prompt, the judge prompt, and recordings for the replay provider."""

from dataclasses import dataclass
from typing import Any

from apps.catalog.models import Prompt, PromptVersion
from apps.evaluation import metrics
from apps.evaluation.golden_sets import golden_set_create
from apps.evaluation.models import GoldenSet
from apps.evaluation.providers import ModelRequest
from apps.evaluation.runs import recorded_responses_import
from tests.factories import make_approved, make_prompt, make_version, put_on_label

CANDIDATE_MESSAGES = [
    {"role": "system", "template": "You are the friendly support assistant of {{ company }}."},
    {"role": "user", "template": "{{ question }}"},
]

CASES: list[dict[str, Any]] = [
    {
        "name": "refund",
        "variables": {"company": "Acme", "question": "Can I get a refund?"},
        "reference": "Yes, within 30 days.",
        "must_contain": ["30 days"],
    },
    {
        "name": "greeting",
        "variables": {"company": "Acme", "question": "Hello"},
        "regex": "^Hello",
        "max_latency_ms": 5000,
    },
    {
        "name": "invoice",
        "variables": {"company": "Acme", "question": "Where is my invoice?"},
        "must_contain": ["billing page"],
        "must_not_contain": ["password"],
    },
]

# Answers that pass every case above.
GOOD = {
    "Can I get a refund?": "Yes, within 30 days.",
    "Hello": "Hello! How can I help?",
    "Where is my invoice?": "Open the billing page and download it.",
}


@dataclass
class RunScene:
    world: Any
    prompt: Prompt
    production: PromptVersion  # v1, on the production label
    candidate: PromptVersion  # v2, a draft
    golden_set: GoldenSet


def build_run_scene(world, *, cases: list[dict[str, Any]] | None = None) -> RunScene:
    prompt = make_prompt(world.support, world.eng)
    production = make_approved(prompt, world.eng, world.gov, message="first")
    put_on_label(prompt, production, "production", world.gov)
    candidate = make_version(prompt, world.eng, messages=CANDIDATE_MESSAGES, message="friendlier")
    golden_set = golden_set_create(
        actor=world.eng, team=world.support, name="greeting-basics", prompt=prompt, cases=cases or CASES
    )
    return RunScene(world, prompt, production, candidate, golden_set)


def make_judge(world, *, model: str = "fake-llm") -> PromptVersion:
    """The team's judge prompt from the default template, approved and on production."""
    judge = make_prompt(world.support, world.eng, name="atalaya-judge")
    version = make_approved(
        judge, world.eng, world.gov, messages=metrics.JUDGE_DEFAULT_TEMPLATE, model=model, parameters={}
    )
    put_on_label(judge, version, "production", world.gov)
    return version


def rendered(version: PromptVersion, variables: dict[str, Any]) -> list[dict[str, str]]:
    from apps.catalog.templating import render_messages

    return render_messages(version.messages, variables, expected=version.variables)


def record(world, version: PromptVersion, answers: dict[str, str], *, model: str | None = None) -> int:
    """Recordings of `version`'s requests for the CASES' questions (question → answer)."""
    rows = []
    for case in CASES:
        question = case["variables"]["question"]
        if question not in answers:
            continue
        rows.append(
            {
                "model": model or version.model,
                "messages": rendered(version, case["variables"]),
                "parameters": version.parameters,
                "text": answers[question],
                "tokens_in": 12,
                "tokens_out": len(answers[question].split()),
                "latency_ms": 150,
            }
        )
    return recorded_responses_import(team=world.support, rows=rows, source="test")


def request_key(version: PromptVersion, variables: dict[str, Any]) -> str:
    return ModelRequest(
        model=version.model, messages=rendered(version, variables), parameters=version.parameters
    ).key()
