"""The evaluation gate: an approval policy's thresholds checked against a run's summary (`metrics.aggregate`).

The policy stores its thresholds as JSON, one entry per gate metric, plus an optional regression rule:

    {"pass_rate": {"min": 0.9}, "judge_mean": {"min": 4}, "latency_p95_ms": {"max": 2000},
     "cost_per_case": {"max": 0.01}, "max_regression": {"pass_rate": 0.05, "judge_mean": 0.25}}

Each metric takes the bound its direction allows: `min` for the higher-is-better ones, `max` for the others
(`GATE_METRICS`). `max_regression` is "no worse than the version on production by more than δ", in the metric's
own units, per metric; a bare number δ means {"pass_rate": δ, "judge_mean": δ}. The baseline is the production
version's summary on the same golden set; a regression rule is skipped (and says why) when there is no baseline
or one of the two summaries lacks the metric. A threshold on a metric the run lacks (a judge mean with no judge
scores, a p95 with no latencies) fails, and says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class GateMetric:
    label: str  # as messages name it
    direction: Direction
    low: float | None = None  # the range a bound may take
    high: float | None = None
    unit: str = ""


GATE_METRICS: dict[str, GateMetric] = {
    "cases": GateMetric("number of cases", "min", low=1),
    "pass_rate": GateMetric("pass rate", "min", low=0.0, high=1.0),
    "pass_rate_lower": GateMetric("pass rate's 95 % lower bound", "min", low=0.0, high=1.0),
    "error_rate": GateMetric("error rate", "max", low=0.0, high=1.0),
    "exact_match_rate": GateMetric("exact match rate", "min", low=0.0, high=1.0),
    "rouge_l_mean": GateMetric("ROUGE-L mean", "min", low=0.0, high=1.0),
    "chrf_mean": GateMetric("chrF mean", "min", low=0.0, high=1.0),
    "bleu_mean": GateMetric("BLEU mean", "min", low=0.0, high=1.0),
    "embedding_similarity_mean": GateMetric("embedding similarity mean", "min", low=-1.0, high=1.0),
    "judge_mean": GateMetric("judge mean", "min"),
    "latency_p50_ms": GateMetric("p50 latency", "max", low=0.0, unit=" ms"),
    "latency_p95_ms": GateMetric("p95 latency", "max", low=0.0, unit=" ms"),
    "cost_per_case": GateMetric("cost per case", "max", low=0.0),
    "cost_total": GateMetric("total cost", "max", low=0.0),
    "tokens_out_per_case": GateMetric("output tokens per case", "max", low=0.0),
}
REGRESSION_KEY = "max_regression"
DEFAULT_REGRESSION_METRICS = ("pass_rate", "judge_mean")
_EPSILON = 1e-9  # 27/30 is 0.9 whatever float rounding says

# Where each gate metric is in a summary, and what a run lacking it is missing.
_MISSING = {
    "pass_rate": "the run has no cases",  # nosec B105 # a message keyed by a metric name, not a password
    "pass_rate_lower": "the run has no cases",  # nosec B105 # idem
    "error_rate": "the run has no cases",
    "exact_match_rate": "no case has a reference answer",
    "rouge_l_mean": "no case has a reference answer",
    "chrf_mean": "no case has a reference answer",
    "bleu_mean": "no case has a reference answer",
    "embedding_similarity_mean": "no embedding similarities (is an embedding model configured?)",
    "judge_mean": "no judge scores (does the golden set have rubrics, and the policy a judge?)",
    "latency_p50_ms": "no latencies measured",
    "latency_p95_ms": "no latencies measured",
    "cost_per_case": "no costs reported",
    "cost_total": "no costs reported",
    "tokens_out_per_case": "no output tokens reported",
}
_SUMMARY_METRIC = {
    "exact_match_rate": "exact_match",
    "rouge_l_mean": "rouge_l",
    "chrf_mean": "chrf",
    "bleu_mean": "bleu",
    "embedding_similarity_mean": "embedding_similarity",
    "judge_mean": "judge_score",
}


class ThresholdError(ValueError):
    """An invalid threshold spec; `key` names the entry (the services answer 422 naming it)."""

    def __init__(self, key: str, message: str):
        self.key = key
        self.message = message
        super().__init__(f"{key}: {message}")


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def validate_thresholds(spec: Any) -> dict[str, Any]:
    """The spec normalised (bounds as floats, `max_regression` as a dict); raises ThresholdError naming the
    first unknown key or bad value."""
    if not isinstance(spec, Mapping):
        raise ThresholdError("thresholds", "must be a JSON object")
    known = ", ".join([*GATE_METRICS, REGRESSION_KEY])
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == REGRESSION_KEY:
            out[key] = _validate_regression(value)
            continue
        metric = GATE_METRICS.get(key)
        if metric is None:
            raise ThresholdError(key, f"unknown gate metric (known: {known})")
        wanted = metric.direction
        if not isinstance(value, Mapping) or set(value) != {wanted}:
            what = "a minimum" if wanted == "min" else "a maximum"
            raise ThresholdError(key, f'takes {what}: {{"{wanted}": <number>}}')
        bound = value[wanted]
        if not _number(bound):
            raise ThresholdError(key, f"{wanted} must be a number")
        _check_range(key, metric, bound)
        if key == "cases" and bound != int(bound):
            raise ThresholdError(key, "min must be a whole number")
        out[key] = {wanted: float(bound)}
    return out


def _check_range(key: str, metric: GateMetric, bound: float) -> None:
    if metric.low is not None and bound < metric.low:
        if metric.high is not None:
            raise ThresholdError(key, f"must be between {_fmt(metric.low)} and {_fmt(metric.high)}")
        raise ThresholdError(key, f"must be at least {_fmt(metric.low)}")
    if metric.high is not None and bound > metric.high:
        low = _fmt(metric.low) if metric.low is not None else "−∞"
        raise ThresholdError(key, f"must be between {low} and {_fmt(metric.high)}")


def _validate_regression(value: Any) -> dict[str, float]:
    if _number(value):
        if value < 0:
            raise ThresholdError(REGRESSION_KEY, "must be a number, zero or more")
        value = dict.fromkeys(DEFAULT_REGRESSION_METRICS, value)
    if not isinstance(value, Mapping) or not value:
        raise ThresholdError(REGRESSION_KEY, 'must be a number or an object such as {"pass_rate": 0.05}')
    out: dict[str, float] = {}
    for name, delta in value.items():
        if name == "cases":
            raise ThresholdError(
                f"{REGRESSION_KEY}.{name}", "the number of cases is not compared with production"
            )
        if name not in GATE_METRICS:
            raise ThresholdError(f"{REGRESSION_KEY}.{name}", "unknown gate metric")
        if not _number(delta) or delta < 0:
            raise ThresholdError(f"{REGRESSION_KEY}.{name}", "must be a number, zero or more")
        out[name] = float(delta)
    return out


def gate_value(summary: Mapping[str, Any], name: str) -> float | None:
    """A gate metric's value in a summary from `metrics.aggregate`, or None when the run lacks it."""
    if name not in GATE_METRICS:
        raise KeyError(name)
    value: Any
    if name in _SUMMARY_METRIC:
        value = (summary.get("metrics") or {}).get(_SUMMARY_METRIC[name], {}).get("mean")
    elif name == "pass_rate_lower":
        ci = summary.get("pass_rate_ci")
        value = ci[0] if ci else None
    elif name.startswith("latency_"):
        value = (summary.get("latency_ms") or {}).get(name.removeprefix("latency_").removesuffix("_ms"))
    elif name.startswith("cost_"):
        value = (summary.get("cost") or {}).get(name.removeprefix("cost_"))
    elif name == "tokens_out_per_case":
        value = (summary.get("tokens") or {}).get("out_per_case")
    else:
        value = summary.get(name)
    return None if value is None else float(value)


@dataclass(frozen=True)
class GateCheck:
    name: str  # the gate metric
    kind: Literal["threshold", "regression"]
    direction: Direction
    required: float | None  # the bound the actual value had to meet (None: skipped regression)
    actual: float | None
    passed: bool
    message: str
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)

    @property
    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.to_dict() for c in self.checks]}


def gate_check(
    summary: Mapping[str, Any], thresholds: Mapping[str, Any], *, baseline: Mapping[str, Any] | None = None
) -> GateOutcome:
    """Check a run's summary against a policy's thresholds (validated here too: ThresholdError on a bad spec)
    and, for `max_regression`, against the production version's summary. Passed when every check passed."""
    spec = validate_thresholds(thresholds)
    checks: list[GateCheck] = []
    for name, bound in spec.items():
        if name == REGRESSION_KEY:
            continue
        checks.append(_threshold_check(summary, name, bound))
    for name, delta in spec.get(REGRESSION_KEY, {}).items():
        checks.append(_regression_check(summary, baseline, name, delta))
    return GateOutcome(passed=all(c.passed for c in checks), checks=checks)


def _threshold_check(summary: Mapping[str, Any], name: str, bound: Mapping[str, float]) -> GateCheck:
    metric = GATE_METRICS[name]
    required = bound[metric.direction]
    actual = gate_value(summary, name)
    wanted = f"{'≥' if metric.direction == 'min' else '≤'} {_fmt(required)}{metric.unit}"
    if actual is None:
        message = f"{metric.label} required {wanted}, but {_MISSING.get(name, 'the run has none')}"
        return GateCheck(name, "threshold", metric.direction, required, None, False, message)
    passed = _meets(actual, required, metric.direction)
    shown = f"{metric.label} {_fmt(actual)}{metric.unit}"
    if passed:
        message = f"{shown} meets the required {wanted}"
    elif metric.direction == "min":
        message = f"{shown} is below the required minimum of {_fmt(required)}{metric.unit}"
    else:
        message = f"{shown} is above the allowed maximum of {_fmt(required)}{metric.unit}"
    return GateCheck(name, "threshold", metric.direction, required, actual, passed, message)


def _regression_check(
    summary: Mapping[str, Any], baseline: Mapping[str, Any] | None, name: str, delta: float
) -> GateCheck:
    metric = GATE_METRICS[name]
    actual = gate_value(summary, name)
    allowed = f"{_fmt(delta)}{metric.unit}"
    if baseline is None:
        message = f"{metric.label}: no version on production to compare with"
        return GateCheck(name, "regression", metric.direction, None, actual, True, message, skipped=True)
    base = gate_value(baseline, name)
    if base is None or actual is None:
        which = "production" if base is None else "this version"
        message = f"{metric.label}: not measured on {which}, so not compared"
        return GateCheck(name, "regression", metric.direction, None, actual, True, message, skipped=True)
    required = base - delta if metric.direction == "min" else base + delta
    passed = _meets(actual, required, metric.direction)
    worse = base - actual if metric.direction == "min" else actual - base
    shown = f"{metric.label} {_fmt(actual)}{metric.unit}"
    production = f"production's {_fmt(base)}{metric.unit}"
    if worse <= _EPSILON:
        message = f"{shown} is no worse than {production}"
    else:
        side = "below" if metric.direction == "min" else "above"
        verdict = "within" if passed else "more than"
        message = (
            f"{shown} is {_fmt(worse)}{metric.unit} {side} {production}, {verdict} the allowed {allowed}"
        )
    return GateCheck(name, "regression", metric.direction, required, actual, passed, message)


def _meets(actual: float, required: float, direction: Direction) -> bool:
    return actual >= required - _EPSILON if direction == "min" else actual <= required + _EPSILON


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{round(value, 4):g}"
