"""Template helpers of the evaluation gate panel: the names of the threshold checks in the reader's language
and their required and actual values."""

from typing import Any

from django import template
from django.utils.translation import gettext as _

register = template.Library()


def _labels() -> dict[str, str]:
    return {
        "pass_rate": _("Pass rate"),
        "judge_mean": _("Judge score, mean"),
        "latency_p95_ms": _("Latency p95 (ms)"),
        "cost_per_case": _("Cost per case"),
        "error_rate": _("Error rate"),
        "max_regression": _("No worse than production (δ)"),
    }


@register.filter
def gate_check_label(name: str) -> str:
    """A check's name in the reader's language; a regression check names the metric it compares."""
    labels = _labels()
    if name in labels:
        return labels[name]
    if name.startswith("regression"):
        metric = name.removeprefix("regression").strip("_:. ")
        return _("No worse than production: %(metric)s") % {"metric": labels.get(metric, metric or "—")}
    return name


@register.filter
def gate_value(value: Any) -> str:
    """A required or actual value: numbers with at most four decimals, nothing as a dash."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):  # a threshold: {"min": 0.9} → "≥ 0.9"
        signs = {"min": "≥", "max": "≤"}
        return ", ".join(f"{signs.get(key, key)} {gate_value(item)}" for key, item in value.items())
    return str(value)


@register.filter
def run_url(run: Any) -> str | None:
    from apps.evaluation.review import run_url as url

    return url(run)
