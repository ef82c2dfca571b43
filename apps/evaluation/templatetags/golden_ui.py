"""Template tags that put golden sets on other apps' pages (the prompt page, a log event, a queue's
results) without those apps' views knowing about them."""

from typing import Any

from django import template

from apps.accounts.roles import CATALOG_READERS
from apps.accounts.selectors import user_has_role
from apps.evaluation.golden_sets import (
    corrected_annotations,
    golden_set_can_write,
    golden_sets_applicable,
    golden_sets_with_latest,
)

register = template.Library()


@register.simple_tag
def prompt_golden_sets(user: Any, prompt: Any) -> list[Any]:
    """The golden sets a prompt's versions are evaluated on (its own and the team's shared), each with its
    latest version, for a user who reads the prompt's team catalog."""
    if not user_has_role(user, prompt.team_id, CATALOG_READERS):
        return []
    return golden_sets_with_latest(golden_sets_applicable(prompt=prompt))


@register.simple_tag
def golden_can_write(user: Any, team_id: int) -> bool:
    return golden_set_can_write(user=user, team_id=team_id)


@register.simple_tag
def queue_corrected_answers(user: Any, queue: Any) -> list[dict[str, Any]]:
    return [
        {"annotation": a, "criterion": c, "text": t}
        for a, c, t in corrected_annotations(user=user, queue=queue)
    ]
