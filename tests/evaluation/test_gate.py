"""The evaluation gate: each threshold passing and failing, the regression rule, missing metrics, bad specs."""

import pytest

from apps.evaluation.gate import GATE_METRICS, ThresholdError, gate_check, gate_value, validate_thresholds
from apps.evaluation.metrics import aggregate


def run(passed=9, failed=1, judge=(5, 4), latency=(800, 1900), cost="0.004", reference=False):
    """The summary of a run: `passed` + `failed` cases, judge scores and latencies cycled over them."""
    rows = []
    for i in range(passed + failed):
        metrics = {"judge_score": judge[i % len(judge)]} if judge else {}
        if reference:
            metrics["rouge_l"] = 0.5
        rows.append(
            {
                "passed": i < passed,
                "metrics": metrics,
                "latency_ms": latency[i % len(latency)] if latency else None,
                "cost": cost,
                "tokens_out": 40,
            }
        )
    return aggregate(rows)


def only(outcome, name, kind="threshold"):
    [check] = [c for c in outcome.checks if c.name == name and c.kind == kind]
    return check


POLICY = {
    "pass_rate": {"min": 0.9},
    "judge_mean": {"min": 4},
    "latency_p95_ms": {"max": 2000},
    "cost_per_case": {"max": 0.01},
}


def test_a_run_meeting_every_threshold_passes_with_a_check_per_threshold():
    outcome = gate_check(run(), POLICY)
    assert outcome.passed
    assert [(c.name, c.passed) for c in outcome.checks] == [
        ("pass_rate", True),
        ("judge_mean", True),
        ("latency_p95_ms", True),
        ("cost_per_case", True),
    ]
    assert only(outcome, "pass_rate").message == "pass rate 0.9 meets the required ≥ 0.9"  # 9/10 is enough
    assert only(outcome, "judge_mean").actual == 4.5
    assert only(outcome, "latency_p95_ms").message == "p95 latency 1,900 ms meets the required ≤ 2,000 ms"
    assert outcome.failures == []


def test_each_threshold_fails_on_its_own_and_says_by_how_much():
    low_pass = gate_check(run(passed=8, failed=2), POLICY)
    assert not low_pass.passed
    assert [c.name for c in low_pass.failures] == ["pass_rate"]
    assert low_pass.failures[0].message == "pass rate 0.8 is below the required minimum of 0.9"
    assert (low_pass.failures[0].required, low_pass.failures[0].actual) == (0.9, 0.8)

    low_judge = gate_check(run(judge=(4, 3)), POLICY)
    assert [c.message for c in low_judge.failures] == ["judge mean 3.5 is below the required minimum of 4"]

    slow = gate_check(run(latency=(800, 2350)), POLICY)
    assert [c.message for c in slow.failures] == [
        "p95 latency 2,350 ms is above the allowed maximum of 2,000 ms"
    ]

    dear = gate_check(run(cost="0.0125"), POLICY)
    assert [c.message for c in dear.failures] == ["cost per case 0.0125 is above the allowed maximum of 0.01"]


def test_the_other_gate_metrics_read_the_summary():
    summary = aggregate(
        [
            {"passed": True, "metrics": {"exact_match": True, "rouge_l": 0.8, "chrf": 0.7, "bleu": 0.4}},
            {"passed": True, "metrics": {"exact_match": False, "rouge_l": 0.6, "chrf": 0.5, "bleu": 0.2}},
            {"passed": False, "errored": True, "latency_ms": 100, "cost": 0.5, "tokens_out": 30},
            {"passed": False, "metrics": {"embedding_similarity": 0.9}, "latency_ms": 300, "tokens_out": 10},
        ]
    )
    expected = {
        "cases": 4,
        "pass_rate": 0.5,
        "error_rate": 0.25,
        "exact_match_rate": 0.5,
        "rouge_l_mean": 0.7,
        "chrf_mean": 0.6,
        "bleu_mean": 0.3,
        "embedding_similarity_mean": 0.9,
        "judge_mean": None,
        "latency_p50_ms": 100.0,
        "latency_p95_ms": 300.0,
        "cost_per_case": 0.125,
        "cost_total": 0.5,
        "tokens_out_per_case": 20.0,
    }
    for name, value in expected.items():
        assert gate_value(summary, name) == (pytest.approx(value) if value is not None else None), name
    assert gate_value(summary, "pass_rate_lower") == pytest.approx(summary["pass_rate_ci"][0])
    assert set(expected) | {"pass_rate_lower"} == set(GATE_METRICS)


def test_lower_bound_and_error_rate_thresholds():
    # 9 of 10: Wilson lower bound 0.5958 (centre (0.9 + 0.19207) / 1.38415, half 1.96 · √(0.009 + 0.0096037) / 1.38415)
    outcome = gate_check(
        run(), {"pass_rate_lower": {"min": 0.6}, "error_rate": {"max": 0}, "cases": {"min": 10}}
    )
    assert only(outcome, "pass_rate_lower").actual == pytest.approx(0.5958, abs=1e-4)
    assert [c.name for c in outcome.failures] == ["pass_rate_lower"]
    assert only(outcome, "error_rate").passed
    assert not gate_check(run(), {"cases": {"min": 11}}).passed


def test_a_required_metric_the_run_lacks_fails_with_the_reason():
    outcome = gate_check(run(judge=(), latency=()), POLICY)
    assert not outcome.passed
    judge = only(outcome, "judge_mean")
    assert (judge.passed, judge.actual) == (False, None)
    assert judge.message == (
        "judge mean required ≥ 4, but no judge scores (does the golden set have rubrics, and the policy a judge?)"
    )
    assert (
        only(outcome, "latency_p95_ms").message
        == "p95 latency required ≤ 2,000 ms, but no latencies measured"
    )
    empty = gate_check(aggregate([]), {"pass_rate": {"min": 0.9}})
    assert empty.failures[0].message == "pass rate required ≥ 0.9, but the run has no cases"


def test_errored_cases_count_against_the_pass_rate():
    summary = aggregate(
        [{"passed": True}] * 9 + [{"passed": False, "errored": True, "metrics": {"judge_score": 1}}]
    )
    assert gate_check(summary, {"pass_rate": {"min": 0.9}}).passed
    summary = aggregate([{"passed": True}] * 8 + [{"passed": False, "errored": True}] * 2)
    assert not gate_check(summary, {"pass_rate": {"min": 0.9}}).passed


def test_no_worse_than_production_by_more_than_delta():
    production = run(passed=9, failed=1, judge=(5, 4))  # pass rate 0.9, judge mean 4.5
    spec = {"max_regression": 0.05}  # a number: the same δ on pass rate and judge mean
    within = gate_check(run(passed=17, failed=2, judge=(5, 4)), spec, baseline=production)  # 17/19 ≈ 0.895
    assert within.passed
    assert only(within, "pass_rate", "regression").message == (
        "pass rate 0.8947 is 0.0053 below production's 0.9, within the allowed 0.05"
    )
    assert (
        only(within, "judge_mean", "regression").message
        == "judge mean 4.5263 is no worse than production's 4.5"  # 86 / 19
    )

    worse = gate_check(run(passed=8, failed=2, judge=(5, 4)), spec, baseline=production)
    check = only(worse, "pass_rate", "regression")
    assert not worse.passed and not check.passed
    assert check.required == pytest.approx(0.85)
    assert check.message == "pass rate 0.8 is 0.1 below production's 0.9, more than the allowed 0.05"

    # exactly δ worse is allowed
    assert gate_check(
        run(passed=17, failed=3), {"max_regression": {"pass_rate": 0.05}}, baseline=production
    ).passed


def test_regression_per_metric_follows_its_direction():
    production = run(latency=(800, 1000))
    spec = {"max_regression": {"latency_p95_ms": 200, "judge_mean": 0.25}}
    outcome = gate_check(run(latency=(800, 1300), judge=(4, 4)), spec, baseline=production)
    latency = only(outcome, "latency_p95_ms", "regression")
    assert (latency.required, latency.actual, latency.passed) == (1200, 1300, False)
    assert (
        latency.message
        == "p95 latency 1,300 ms is 300 ms above production's 1,000 ms, more than the allowed 200 ms"
    )
    judge = only(outcome, "judge_mean", "regression")
    assert not judge.passed  # 4 against 4.5: 0.5 worse than production, 0.25 allowed
    assert gate_check(run(latency=(800, 1100)), spec, baseline=production).passed


def test_regression_is_skipped_without_production_or_when_either_lacks_the_metric():
    no_baseline = gate_check(run(), {"max_regression": 0.05})
    assert no_baseline.passed
    assert [c.skipped for c in no_baseline.checks] == [True, True]
    assert no_baseline.checks[0].message == "pass rate: no version on production to compare with"

    unjudged_production = run(judge=())
    outcome = gate_check(run(), {"max_regression": 0.05}, baseline=unjudged_production)
    judge = only(outcome, "judge_mean", "regression")
    assert judge.skipped and judge.passed
    assert judge.message == "judge mean: not measured on production, so not compared"
    assert not only(outcome, "pass_rate", "regression").skipped


def test_thresholds_and_regression_together():
    production = run()
    spec = {**POLICY, "max_regression": {"pass_rate": 0.0}}
    outcome = gate_check(run(passed=19, failed=1), spec, baseline=production)
    assert outcome.passed
    assert len(outcome.checks) == 5
    stored = outcome.to_dict()
    assert stored["passed"] is True
    assert stored["checks"][-1] == {
        "name": "pass_rate",
        "kind": "regression",
        "direction": "min",
        "required": 0.9,
        "actual": 0.95,
        "passed": True,
        "message": "pass rate 0.95 is no worse than production's 0.9",
        "skipped": False,
    }


def test_an_empty_policy_passes_with_no_checks():
    outcome = gate_check(run(passed=0, failed=3), {})
    assert outcome.passed and outcome.checks == []


def test_validate_thresholds_normalises():
    assert validate_thresholds({"pass_rate": {"min": 1}, "max_regression": 0.1}) == {
        "pass_rate": {"min": 1.0},
        "max_regression": {"pass_rate": 0.1, "judge_mean": 0.1},
    }


@pytest.mark.parametrize(
    "spec, key, message",
    [
        ([], "thresholds", "must be a JSON object"),
        ({"pass_rat": {"min": 0.9}}, "pass_rat", "unknown gate metric (known: cases, pass_rate,"),
        ({"pass_rate": {"max": 0.9}}, "pass_rate", 'takes a minimum: {"min": <number>}'),
        ({"latency_p95_ms": {"min": 10}}, "latency_p95_ms", 'takes a maximum: {"max": <number>}'),
        ({"pass_rate": 0.9}, "pass_rate", "takes a minimum"),
        ({"pass_rate": {"min": 0.9, "max": 1}}, "pass_rate", "takes a minimum"),
        ({"pass_rate": {"min": "0.9"}}, "pass_rate", "min must be a number"),
        ({"pass_rate": {"min": True}}, "pass_rate", "min must be a number"),
        ({"pass_rate": {"min": float("nan")}}, "pass_rate", "min must be a number"),
        ({"pass_rate": {"min": 90}}, "pass_rate", "must be between 0 and 1"),
        ({"embedding_similarity_mean": {"min": -2}}, "embedding_similarity_mean", "must be between -1 and 1"),
        ({"cost_per_case": {"max": -0.01}}, "cost_per_case", "must be at least 0"),
        ({"cases": {"min": 0}}, "cases", "must be at least 1"),
        ({"cases": {"min": 2.5}}, "cases", "min must be a whole number"),
        ({"max_regression": -0.1}, "max_regression", "must be a number, zero or more"),
        ({"max_regression": {}}, "max_regression", "must be a number or an object"),
        ({"max_regression": {"judge": 0.1}}, "max_regression.judge", "unknown gate metric"),
        ({"max_regression": {"cases": 1}}, "max_regression.cases", "the number of cases is not compared"),
        (
            {"max_regression": {"pass_rate": -0.1}},
            "max_regression.pass_rate",
            "must be a number, zero or more",
        ),
    ],
)
def test_invalid_thresholds_name_the_key(spec, key, message):
    with pytest.raises(ThresholdError) as caught:
        validate_thresholds(spec)
    assert caught.value.key == key
    assert message in caught.value.message
    with pytest.raises(ThresholdError):
        gate_check(run(), spec)
