"""Template helpers for evaluation runs on catalog pages (the runs' history, the "Run evaluation" form)."""

from typing import Any

from django import template

from apps.catalog.models import Prompt, PromptVersion
from apps.evaluation.forms_runs import RunStartForm
from apps.evaluation.runs import evaluation_runs_for_prompt, user_can_start_runs

register = template.Library()

HISTORY_LIMIT = 20


@register.simple_tag
def prompt_runs(user: Any, prompt: Prompt) -> list[Any]:
    """The newest runs of the prompt's versions that the user may see."""
    return list(evaluation_runs_for_prompt(user=user, prompt=prompt)[:HISTORY_LIMIT])


@register.simple_tag
def run_start_form(user: Any, version: PromptVersion) -> RunStartForm | None:
    """The form to start a run of this version, for those who may."""
    if not user_can_start_runs(user=user, team_id=version.prompt.team_id):
        return None
    return RunStartForm(prompt=version.prompt, initial={"provider": "replay"})


@register.filter
def percent(value: Any) -> str:
    return "—" if value is None else f"{float(value) * 100:.1f} %"


@register.filter
def interval(ci: Any, as_percent: bool = False) -> str:
    if not ci:
        return ""
    low, high = ci
    if as_percent:
        return f"[{low * 100:.1f}, {high * 100:.1f}] %"
    return f"[{low:.3g}, {high:.3g}]"
