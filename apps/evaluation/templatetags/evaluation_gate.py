"""Template helpers of the evaluation gate panel: the gate's metrics and checks in the reader's language, and
their required and actual values."""

from typing import Any

from django import template
from django.utils.translation import gettext as _

register = template.Library()


def _labels() -> dict[str, str]:
    """The gate metrics of apps/evaluation/gate.py (GATE_METRICS), as people read them."""
    return {
        "cases": _("Number of cases"),
        "pass_rate": _("Pass rate"),
        "pass_rate_lower": _("Pass rate, lower confidence bound"),
        "error_rate": _("Error rate"),
        "exact_match_rate": _("Exact match rate"),
        "rouge_l_mean": _("ROUGE-L mean"),
        "chrf_mean": _("chrF mean"),
        "bleu_mean": _("BLEU mean"),
        "embedding_similarity_mean": _("Embedding similarity mean"),
        "judge_mean": _("Judge score, mean"),
        "latency_p50_ms": _("Latency p50 (ms)"),
        "latency_p95_ms": _("Latency p95 (ms)"),
        "cost_per_case": _("Cost per case"),
        "cost_total": _("Total cost"),
        "tokens_out_per_case": _("Output tokens per case"),
        "max_regression": _("No worse than production by more than (δ)"),
    }


@register.filter
def gate_check_label(name: str) -> str:
    """A gate metric's name in the reader's language (unknown names as they are)."""
    return _labels().get(name, name)


@register.filter
def gate_check_title(check: Any) -> str:
    """What a check tested: the metric, or for the regression rule, the metric against production."""
    label = gate_check_label(check.name)
    if getattr(check, "kind", "") == "regression":
        return _("%(metric)s, no worse than production") % {"metric": label}
    return label


@register.filter
def gate_required(check: Any) -> str:
    """The bound a check's value had to meet, with its direction (≥ for a minimum, ≤ for a maximum)."""
    if check.required is None:
        return "—"
    sign = "≥" if getattr(check, "direction", "min") == "min" else "≤"
    return f"{sign} {gate_value(check.required)}"


@register.filter
def gate_value(value: Any) -> str:
    """A number with at most four decimals, nothing as a dash; a threshold {"min": 0.9} as "≥ 0.9", and the
    regression rule {"pass_rate": 0.05} as "Pass rate 0.05"."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".")
    if isinstance(value, dict):
        signs = {"min": "≥", "max": "≤"}
        return ", ".join(
            f"{signs.get(key) or gate_check_label(key)} {gate_value(item)}" for key, item in value.items()
        )
    return str(value)


@register.filter
def run_url(run: Any) -> str:
    from apps.evaluation.review import run_url as url

    return url(run)
