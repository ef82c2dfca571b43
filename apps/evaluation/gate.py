"""TEMPORARY stand-in for the `metrics` branch's apps/evaluation/gate.py (validate_thresholds only), so the
policy editing can be built before it lands. Replaced by that branch's module on merge."""

from dataclasses import dataclass, field
from typing import Any

_METRICS = {
    "pass_rate": ("min",),
    "judge_mean": ("min",),
    "latency_p95_ms": ("max",),
    "cost_per_case": ("max",),
    "error_rate": ("max",),
}


def validate_thresholds(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ValueError("Thresholds are a JSON object.")
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "max_regression":
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise ValueError("max_regression: a number ≥ 0.")
            out[key] = value
            continue
        if key not in _METRICS:
            raise ValueError(f"Unknown threshold {key!r}.")
        if not isinstance(value, dict) or set(value) - set(_METRICS[key]) or not value:
            raise ValueError(f"{key}: give {' or '.join(_METRICS[key])}.")
        for bound, number in value.items():
            if isinstance(number, bool) or not isinstance(number, int | float):
                raise ValueError(f"{key}.{bound}: a number.")
        out[key] = value
    return out


@dataclass(frozen=True)
class GateCheck:
    name: str
    required: Any
    actual: Any
    passed: bool
    message: str


@dataclass(frozen=True)
class GateOutcome:
    passed: bool
    checks: list[GateCheck] = field(default_factory=list)


def gate_check(summary: dict[str, Any], thresholds: dict[str, Any], *, baseline: dict | None) -> GateOutcome:
    checks = []
    for key, bounds in thresholds.items():
        if key == "max_regression":
            if baseline and "pass_rate" in baseline and "pass_rate" in summary:
                floor = baseline["pass_rate"] - bounds
                ok = summary["pass_rate"] >= floor
                checks.append(
                    GateCheck(
                        "regression_pass_rate",
                        f"≥ {floor:g}",
                        summary["pass_rate"],
                        ok,
                        "" if ok else "pass rate worse than production by more than δ",
                    )
                )
            continue
        actual = summary.get(key)
        if "min" in bounds:
            ok = actual is not None and actual >= bounds["min"]
            checks.append(
                GateCheck(key, f"≥ {bounds['min']}", actual, ok, "" if ok else f"{key} below minimum")
            )
        else:
            ok = actual is not None and actual <= bounds["max"]
            checks.append(
                GateCheck(key, f"≤ {bounds['max']}", actual, ok, "" if ok else f"{key} above maximum")
            )
    return GateOutcome(all(c.passed for c in checks), checks)
