"""What the golden-set tests share: cases with every kind of expectation, and a golden set of the support
team's prompt built through the services."""

from typing import Any

from apps.evaluation.golden_sets import golden_set_create
from apps.evaluation.models import GoldenSet
from tests.factories import make_prompt, make_version

CASES: list[dict[str, Any]] = [
    {
        "name": "refund",
        "variables": {"company": "Acme", "question": "Can I get a refund?"},
        "reference": "Yes, within 30 days.",
        "must_contain": ["30 days"],
        "must_not_contain": ["password"],
    },
    {
        "name": "order json",
        "variables": {"company": "Acme", "question": "Order 42 status as JSON"},
        "json_schema": {
            "type": "object",
            "required": ["order"],
            "properties": {"order": {"type": "integer"}},
        },
        "max_latency_ms": 2000,
    },
    {
        "name": "greeting, ñandú",
        "variables": {"company": "Acme", "question": "Hola\nqué tal"},
        "regex": r"^(Hola|Hello)\b",
        "rubric": "Polite, in the customer's language.",
        "max_tokens": 200,
        "case_sensitive": True,
    },
    {
        "name": "exact",
        "variables": {"company": "Acme", "question": "Say OK"},
        "reference": 'OK, "quoted", comma',
        "exact": True,
    },
]


def make_golden_set(world, *, name: str = "support-basics", cases=None, shared: bool = False) -> GoldenSet:
    from apps.catalog.models import Prompt

    prompt = Prompt.objects.filter(team=world.support, name="greeting").first()
    if prompt is None and not shared:
        prompt = make_prompt(world.support, world.eng)
        make_version(prompt, world.eng)
    return golden_set_create(
        actor=world.eng,
        team=world.support,
        name=name,
        description="What support answers must do",
        prompt=None if shared else prompt,
        cases=CASES if cases is None else cases,
    )
