"""Every metric against values computed by hand, the judge's answer parsing, and a run's aggregates."""

import math
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.catalog.templating import render_messages, template_variables
from apps.evaluation.metrics import (
    JUDGE_DEFAULT_TEMPLATE,
    REGEX_TIMEOUT_S,
    ExpectationError,
    Expectations,
    JudgeAnswerError,
    JudgeVerdict,
    aggregate,
    bleu,
    chrf,
    cosine_similarity,
    parse_judge_answer,
    percentile_nearest_rank,
    rouge_l,
    score_case,
)


def score(expect, output, latency_ms=None, tokens_out=None, **kwargs):
    return score_case(expect.check(), output, latency_ms=latency_ms, tokens_out=tokens_out, **kwargs)


# --- reference metrics ---------------------------------------------------------------------------------------


def test_rouge_l_is_the_f1_of_the_longest_common_subsequence_of_words():
    # reference a b c d, output a c e: LCS "a c" = 2; P = 2/3, R = 2/4, F1 = 2PR / (P + R) = 4/7
    assert rouge_l("a c e", "a b c d") == pytest.approx(4 / 7)
    # LCS "the cat on the mat" = 5 of 6 words on both sides
    assert rouge_l("The cat is on the mat.", "the cat sat on the mat") == pytest.approx(5 / 6)
    assert rouge_l("completely different", "the cat sat") == 0.0
    assert rouge_l("", "the cat sat") == 0.0


def test_rouge_l_keeps_accented_words_whole():
    # words: cuál es la canción / la canción es; LCS "la canción" = 2: P = 2/3, R = 2/4, F1 = 4/7.
    # (rouge-score's own tokenizer would split "canción" into "canci" and "n" and drop "¿".)
    assert rouge_l("la canción es", "¿Cuál es la canción?") == pytest.approx(4 / 7)
    assert rouge_l("La CANCIÓN", "la canción") == 1.0


@settings(max_examples=300, deadline=None)
@given(
    output=st.lists(
        st.sampled_from(["la", "canción", "the", "cat", "Sat", "on", "mat", "¿qué", "7"]), max_size=30
    ),
    reference=st.lists(
        st.sampled_from(["la", "Canción", "the", "cat", "sat", "on", "mat", "qué?", "7"]), max_size=30
    ),
    case_sensitive=st.booleans(),
)
def test_rouge_l_equals_googles_reference_implementation(output, reference, case_sensitive):
    from rouge_score.rouge_scorer import RougeScorer

    from apps.evaluation.metrics import _UnicodeWords

    output_text, reference_text = " ".join(output), " ".join(reference)
    scorer = RougeScorer(["rougeL"], use_stemmer=False, tokenizer=_UnicodeWords(case_sensitive))
    expected = scorer.score(reference_text, output_text)["rougeL"].fmeasure
    assert rouge_l(output_text, reference_text, case_sensitive=case_sensitive) == pytest.approx(
        expected, abs=1e-12
    )


def test_chrf_averages_character_ngram_precision_and_recall_then_takes_f_beta_2():
    # output "ab", reference "abc": 1-grams P = 2/2, R = 2/3; 2-grams P = 1/1, R = 1/2; no 3-grams in the output.
    # Averaged over the two orders: P = 1, R = 7/12; chrF2 = 5PR / (4P + R) = (35/12) / (55/12) = 7/11.
    assert chrf("ab", "abc") == pytest.approx(7 / 11)
    assert chrf("the cat sat", "the cat sat") == pytest.approx(1.0)
    assert chrf("", "the cat sat") == 0.0


def test_bleu_is_the_geometric_mean_of_ngram_precisions_with_effective_order():
    # "the cat is on the mat" against "the cat sat on the mat": n-gram precisions 5/6, 3/5, 1/4, 1/6,
    # same length so no brevity penalty: BLEU = (5/6 · 3/5 · 1/4 · 1/6) ** (1/4)
    assert bleu("the cat is on the mat", "the cat sat on the mat") == pytest.approx((15 / 720) ** 0.25)
    # two words: only 1- and 2-grams exist, and effective order uses just those: (2/2 · 1/1) ** (1/2) = 1
    assert bleu("hello world", "hello world") == pytest.approx(1.0)
    # "a b x c" against "a b y c": 1-grams 3/4, 2-grams 1/3, no 3- or 4-gram match. sacrebleu's "exp" smoothing
    # gives the k-th zero count a precision of 1 / (2^k · total): 3-grams 1/(2·2), 4-grams 1/(4·1).
    assert bleu("a b x c", "a b y c") == pytest.approx((3 / 4 * 1 / 3 * 1 / 4 * 1 / 4) ** 0.25)


def test_a_reference_reports_exact_match_and_the_three_scores_without_failing_the_case():
    result = score(Expectations(reference="The cat sat on the mat"), "the cat  sat on\nthe mat ")
    assert result.metrics["exact_match"] is True  # whitespace and case normalised
    assert result.metrics["rouge_l"] == pytest.approx(1.0)
    assert result.metrics["chrf"] == pytest.approx(1.0)
    assert result.metrics["bleu"] == pytest.approx(1.0)
    sensitive = score(Expectations(reference="The cat sat", case_sensitive=True), "the cat sat")
    assert sensitive.metrics["exact_match"] is False
    assert sensitive.metrics["rouge_l"] == pytest.approx(2 / 3)  # "The" ≠ "the": LCS "cat sat", P = R = 2/3
    # chrF on "thecatsat" / "Thecatsat" (spaces dropped): n-grams of order 1..6 number 9..4 on each side and all
    # but the one holding "T"/"t" match, so P = R at each order and chrF is their mean.
    assert sensitive.metrics["chrf"] == pytest.approx((8 / 9 + 7 / 8 + 6 / 7 + 5 / 6 + 4 / 5 + 3 / 4) / 6)
    assert sensitive.metrics["bleu"] < 1.0
    different = score(Expectations(reference="The cat sat on the mat"), "A dog.")
    assert different.metrics["exact_match"] is False
    assert different.passed and different.failures == []  # scores only: no `exact` asked for


def test_exact_match_fails_the_case_only_when_asked_for():
    expect = Expectations(reference="Madrid", exact=True)
    assert score(expect, "  madrid\n").passed
    result = score(expect, "Madrid.")
    assert not result.passed
    assert result.failures == ["the output is not the reference answer"]
    assert not score(Expectations(reference="Madrid", exact=True, case_sensitive=True), "madrid").passed


# --- checks ------------------------------------------------------------------------------------------------


def test_contains_names_each_missing_phrase():
    expect = Expectations(must_contain=("refund", "within 30 days", "receipt"))
    result = score(expect, "You can get a REFUND within\n30 days.")
    assert result.metrics == {"contains": False}
    assert result.failures == ["missing the phrase “receipt”"]
    assert score(expect, "Refund within 30 days with the receipt.").passed


def test_not_contains_names_each_forbidden_phrase_and_respects_case_sensitivity():
    expect = Expectations(must_not_contain=("guarantee", "lawyer"))
    result = score(expect, "We Guarantee it; ask your lawyer.")
    assert result.metrics == {"not_contains": False}
    assert result.failures == [
        "contains the forbidden phrase “guarantee”",
        "contains the forbidden phrase “lawyer”",
    ]
    sensitive = Expectations(must_not_contain=("guarantee",), case_sensitive=True)
    assert score(sensitive, "We Guarantee it").passed
    assert not score(sensitive, "we guarantee it").passed


def test_regex_searches_anywhere_as_written():
    expect = Expectations(regex=r"order #\d{6}\b")
    assert score(expect, "Your order #123456 has shipped").metrics == {"regex": True}
    result = score(expect, "Your ORDER #123456 has shipped")  # no (?i): case matters in patterns
    assert result.failures == [r"does not match the pattern order #\d{6}\b"]
    assert score(Expectations(regex=r"(?i)order #\d{6}"), "ORDER #123456").passed


def test_a_catastrophically_backtracking_regex_fails_on_its_timeout_instead_of_hanging():
    started = time.perf_counter()
    result = score(Expectations(regex=r"(a|aa)+$"), "a" * 40 + "!")
    elapsed = time.perf_counter() - started
    assert result.metrics == {"regex": False}
    assert result.failures == [f"the pattern (a|aa)+$ timed out after {REGEX_TIMEOUT_S:g} s"]
    assert elapsed < 5  # without the timeout this search runs for hours


def test_json_validity_accepts_a_fenced_block_and_names_the_parse_error():
    expect = Expectations(expect_json=True)
    assert score(expect, '{"a": 1}').metrics == {"json_valid": True}
    assert score(expect, '```json\n{"a": [1, 2]}\n```').passed
    assert score(expect, "```\n[1, 2]\n```").passed
    broken = score(expect, '{"a": 1,}')
    assert broken.metrics == {"json_valid": False}
    assert broken.failures[0].startswith("not valid JSON: Expecting property name enclosed in double quotes")
    assert not score(expect, '{"a": NaN}').passed  # not JSON, whatever Python's json accepts
    assert not score(expect, 'Here you go: {"a": 1}').passed  # prose around it is not JSON output


SCHEMA = {
    "type": "object",
    "required": ["sku", "price"],
    "properties": {"sku": {"type": "string"}, "price": {"type": "number", "minimum": 0}},
    "additionalProperties": False,
}


def test_json_schema_failure_names_the_path_of_the_error():
    expect = Expectations(json_schema=SCHEMA)
    assert score(expect, '{"sku": "A-1", "price": 9.5}').metrics == {"json_valid": True, "json_schema": True}
    result = score(expect, '{"sku": "A-1", "price": -2}')
    assert result.metrics == {"json_valid": True, "json_schema": False}
    assert result.failures == ["JSON schema: at $.price: -2 is less than the minimum of 0"]
    missing = score(expect, '{"sku": "A-1"}')
    assert missing.failures == ["JSON schema: at $: 'price' is a required property"]
    invalid = score(expect, "not json")
    assert invalid.metrics == {"json_valid": False, "json_schema": False}
    assert len(invalid.failures) == 1


def test_json_schema_follows_references_inside_the_schema():
    schema = {
        "$defs": {"sku": {"type": "string", "pattern": "^[A-Z]-\\d+$"}},
        "items": {"$ref": "#/$defs/sku"},
    }
    expect = Expectations(json_schema=schema)
    assert score(expect, '["A-1", "B-22"]').passed
    assert score(expect, '["A-1", "b22"]').failures == [
        "JSON schema: at $[1]: 'b22' does not match '^[A-Z]-\\\\d+$'"
    ]


def test_json_schema_counts_further_errors_and_checks_formats():
    result = score(Expectations(json_schema=SCHEMA), '{"sku": 5, "price": "x", "extra": 1}')
    assert result.failures[0].endswith("(and 2 more)")
    email = Expectations(json_schema={"type": "string", "format": "email"})
    assert score(email, '"ana@example.com"').passed
    assert not score(email, '"not an email"').passed


def test_latency_and_token_limits_name_the_limit():
    expect = Expectations(max_latency_ms=2000, max_tokens=50)
    assert score(expect, "ok", latency_ms=2000, tokens_out=50).metrics == {
        "latency_ok": True,
        "tokens_ok": True,
    }
    result = score(expect, "ok", latency_ms=2350.5, tokens_out=51)
    assert result.failures == [
        "latency 2350.5 ms over the limit of 2000 ms",
        "51 output tokens, over the limit of 50",
    ]
    unmeasured = score(expect, "ok")
    assert unmeasured.metrics == {"latency_ok": False, "tokens_ok": False}
    assert unmeasured.failures == [
        "latency not measured (limit 2000 ms)",
        "output tokens not reported (limit 50)",
    ]


def test_only_the_metrics_a_case_declares_are_reported():
    assert score(Expectations(), "anything").metrics == {}
    assert score(Expectations(), "anything").passed
    result = score(
        Expectations(rubric="polite"), "hi", embedding_similarity=0.82, judge=JudgeVerdict(4, "fine")
    )
    assert result.metrics == {"embedding_similarity": 0.82, "judge_score": 4.0}
    assert result.passed  # scores never fail a case: the gate thresholds their means


def test_a_judge_error_makes_the_case_an_error_but_keeps_its_checks():
    result = score(
        Expectations(must_contain=("hola",), rubric="polite"),
        "hola",
        judge_error="the judge's answer is empty",
    )
    assert result.errored and not result.passed
    assert result.error == "judge: the judge's answer is empty"
    assert result.metrics == {"contains": True}
    assert result.to_dict() == {
        "passed": False,
        "errored": True,
        "error": "judge: the judge's answer is empty",
        "metrics": {"contains": True},
        "failures": [],
    }


def test_cosine_similarity():
    assert cosine_similarity([1, 0], [0, 1]) == 0.0
    assert cosine_similarity([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert cosine_similarity([1, 0], [-1, 0]) == -1.0
    # (1·1 + 1·0) / (√2 · 1) = 1/√2
    assert cosine_similarity([1, 1], [1, 0]) == pytest.approx(1 / math.sqrt(2))
    with pytest.raises(ValueError, match="different lengths"):
        cosine_similarity([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="zero vector"):
        cosine_similarity([0, 0], [1, 0])


# --- expectations ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, field, message",
    [
        ({"regex": "(unclosed"}, "regex", "invalid regular expression: missing ) at position 9"),
        ({"regex": "a" * 1001}, "regex", "longer than 1000 characters"),
        ({"json_schema": {"type": "nope"}}, "json_schema", "invalid JSON schema at $.type"),
        ({"json_schema": {"properties": {"a": {"minimum": "0"}}}}, "json_schema", "$.properties.a.minimum"),
        ({"json_schema": []}, "json_schema", "must be a JSON object"),
        (
            {"json_schema": {"properties": {"a": {"$ref": "https://example.com/a.json"}}}},
            "json_schema",
            "only references inside the schema (#/…) are allowed: https://example.com/a.json",
        ),
        (
            {"json_schema": {"items": {"$ref": "#/$defs/nope"}}},
            "json_schema",
            "the reference #/$defs/nope points",
        ),
        ({"max_latency_ms": -5}, "max_latency_ms", "must be a positive whole number"),
        ({"max_tokens": 0}, "max_tokens", "must be a positive whole number"),
        ({"max_tokens": True}, "max_tokens", "must be a positive whole number"),
        ({"exact": True}, "exact", "an exact match needs a reference answer"),
        ({"must_contain": ("ok", " ")}, "must_contain", "phrases must be non-empty text"),
    ],
)
def test_invalid_expectations_name_the_field(kwargs, field, message):
    with pytest.raises(ExpectationError) as caught:
        Expectations(**kwargs).check()
    assert caught.value.field == field
    assert message in caught.value.message
    assert isinstance(caught.value, ValueError)


def test_expectations_round_trip_their_json_form_and_refuse_unknown_fields():
    data = {
        "reference": "Madrid",
        "exact": True,
        "must_contain": ["Madrid"],
        "json_schema": None,
        "max_tokens": 5,
    }
    expect = Expectations.from_dict(data)
    assert expect.must_contain == ("Madrid",)
    assert expect.to_dict() == {
        "reference": "Madrid",
        "exact": True,
        "must_contain": ["Madrid"],
        "max_tokens": 5,
    }
    assert Expectations.from_dict(expect.to_dict()) == expect
    with pytest.raises(ExpectationError) as caught:
        Expectations.from_dict({"refrence": "typo"})
    assert caught.value.field == "refrence"
    assert caught.value.message.startswith("unknown field")
    with pytest.raises(ExpectationError, match="must_contain: must be a list of phrases"):
        Expectations.from_dict({"must_contain": "one phrase"})
    with pytest.raises(ExpectationError, match="exact: must be true or false"):
        Expectations.from_dict({"exact": "yes"})
    with pytest.raises(ExpectationError, match="regex: invalid regular expression"):
        Expectations.from_dict({"regex": "["})


# --- the judge ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer, verdict",
    [
        ('{"score": 4, "reason": "Polite and complete."}', JudgeVerdict(4.0, "Polite and complete.")),
        ('```json\n{"score": 5, "reason": "Perfect."}\n```', JudgeVerdict(5.0, "Perfect.")),
        (
            'Let me think. {"note": 1} Verdict: {"score": 2.5, "reason": "Partly."} Done.',
            JudgeVerdict(2.5, "Partly."),
        ),
        ('{"score": 1}', JudgeVerdict(1.0, "")),
    ],
)
def test_the_judge_answer_is_read_alone_fenced_or_inside_prose(answer, verdict):
    assert parse_judge_answer(answer) == verdict


@pytest.mark.parametrize(
    "answer, message",
    [
        ("", "the judge's answer is empty"),
        (
            "I would give it a four.",
            "no JSON object with a score in the judge's answer: “I would give it a four.”",
        ),
        ('{"score": 4, "reason": "unterminated}', "no JSON object with a score"),
        ('{"grade": 4}', "no JSON object with a score"),
        ('{"score": "4"}', 'the judge\'s score must be a number, not "4"'),
        ('{"score": true}', "the judge's score must be a number, not true"),
        ('{"score": null}', "the judge's score must be a number, not null"),
        ('{"score": NaN}', "the judge's score must be a finite number, not nan"),
        ('{"score": 6}', "the judge's score 6 is outside the scale 1–5"),
        ('{"score": 0.5}', "the judge's score 0.5 is outside the scale 1–5"),
        ('{"score": 3, "reason": ["a"]}', "the judge's reason must be text"),
    ],
)
def test_a_malformed_judge_answer_is_an_error_with_its_reason(answer, message):
    with pytest.raises(JudgeAnswerError) as caught:
        parse_judge_answer(answer)
    assert message in caught.value.message


def test_the_judge_scale_can_change():
    assert parse_judge_answer('{"score": 9}', scale=(0, 10)).score == 9.0
    with pytest.raises(JudgeAnswerError, match="outside the scale 0–10"):
        parse_judge_answer('{"score": 11}', scale=(0, 10))


def test_the_default_judge_template_is_a_valid_catalog_template():
    templates = [m["template"] for m in JUDGE_DEFAULT_TEMPLATE]
    assert [m["role"] for m in JUDGE_DEFAULT_TEMPLATE] == ["system", "user"]
    assert template_variables(templates) == ["input", "output", "reference", "rubric"]
    variables = {"rubric": "Be polite.", "input": "Hi", "output": "Hello!", "reference": ""}
    user = render_messages(JUDGE_DEFAULT_TEMPLATE, variables, expected=template_variables(templates))[1]
    assert user["content"] == "Rubric:\nBe polite.\n\nInput:\nHi\n\nAnswer to grade:\nHello!"
    variables["reference"] = "Hello."
    user = render_messages(JUDGE_DEFAULT_TEMPLATE, variables, expected=template_variables(templates))[1]
    assert "Reference answer:\nHello.\n\nAnswer to grade:" in user["content"]


# --- aggregates --------------------------------------------------------------------------------------------


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 21)]  # 1..20
    assert percentile_nearest_rank(values, 95) == 19.0  # rank ceil(0.95 · 20) = 19
    assert percentile_nearest_rank(values, 50) == 10.0
    assert percentile_nearest_rank([300.0, 100.0, 200.0], 95) == 300.0  # rank ceil(2.85) = 3
    assert percentile_nearest_rank([], 95) is None


ROWS = [
    # 10 cases: 7 passed, 2 failed, 1 errored
    *(
        {
            "passed": True,
            "metrics": {"contains": True, "judge_score": s},
            "latency_ms": lat,
            "cost": "0.002",
            "tokens_in": 100,
            "tokens_out": 20,
        }
        for s, lat in [(5, 100), (4, 200), (4, 300), (5, 400), (3, 500), (4, 600), (3, 700)]
    ),
    {"passed": False, "metrics": {"contains": False, "judge_score": 2}, "latency_ms": 800, "cost": 0.002},
    {
        "passed": False,
        "metrics": {"contains": False, "judge_score": 1},
        "latency_ms": 900,
        "cost": Decimal("0.002"),
    },
    # a result row as stored: the provider's or judge's error in `error`
    {
        "passed": False,
        "error": "judge: no JSON object",
        "metrics": {"contains": True},
        "latency_ms": None,
        "cost": None,
    },
]


def test_aggregate_counts_and_the_wilson_interval_of_the_pass_rate():
    summary = aggregate(ROWS)
    assert (summary["cases"], summary["passed"], summary["failed"], summary["errors"]) == (10, 7, 2, 1)
    assert summary["pass_rate"] == 0.7  # the errored case counts as not passed
    assert summary["error_rate"] == 0.1
    # Wilson, z = 1.96, p = 0.7, n = 10: centre (0.7 + 0.19207) / 1.38415 = 0.64457,
    # half 1.96 · √(0.021 + 0.0096037) / 1.38415 = 0.24775
    low, high = summary["pass_rate_ci"]
    assert low == pytest.approx(0.39677, abs=1e-4)
    assert high == pytest.approx(0.89221, abs=1e-4)


def test_aggregate_means_leave_errored_cases_out():
    metrics = aggregate(ROWS)["metrics"]
    assert list(metrics) == ["contains", "judge_score"]
    contains = metrics["contains"]  # 7 of the 9 cases that did not error
    assert (contains["n"], contains["mean"]) == (9, pytest.approx(7 / 9))
    # Wilson of 7/9: centre (0.77778 + 0.21342) / 1.42683 = 0.69470, half 1.96 · √(0.019204 + 0.011858) / 1.42683
    assert contains["ci"] == [pytest.approx(0.45258, abs=1e-4), pytest.approx(0.93676, abs=1e-4)]
    judge = metrics[
        "judge_score"
    ]  # 5 4 4 5 3 4 3 2 1: mean 31/9, s² = (Σx² − n·mean²)/(n − 1) = (121 − 961/9)/8
    assert judge["n"] == 9
    assert judge["mean"] == pytest.approx(31 / 9)
    half = 2.306 * math.sqrt((121 - 961 / 9) / 8 / 9)  # t(8) = 2.306
    assert judge["ci"] == [pytest.approx(31 / 9 - half), pytest.approx(31 / 9 + half)]


def test_aggregate_latency_cost_and_tokens():
    summary = aggregate(ROWS)
    # 9 latencies 100..900: p50 rank ceil(4.5) = 5 → 500; p95 rank ceil(8.55) = 9 → 900
    assert summary["latency_ms"] == {"n": 9, "mean": 500.0, "p50": 500.0, "p95": 900.0, "max": 900.0}
    assert summary["cost"]["total"] == pytest.approx(0.018)
    assert summary["cost"]["per_case"] == pytest.approx(0.0018)  # over all 10 cases
    assert summary["tokens"] == {"in": 700, "out": 140, "out_per_case": 20.0}


def test_aggregate_of_nothing():
    summary = aggregate([])
    assert summary["cases"] == 0
    assert summary["pass_rate"] is None and summary["pass_rate_ci"] is None
    assert summary["metrics"] == {}
    assert summary["latency_ms"]["p95"] is None
    assert summary["cost"] == {"total": None, "per_case": None}


def test_a_single_score_has_a_mean_and_no_interval():
    summary = aggregate([{"passed": True, "metrics": {"rouge_l": 0.5}}])
    assert summary["metrics"]["rouge_l"] == {"n": 1, "mean": 0.5, "ci": None}
    assert summary["pass_rate_ci"] == [pytest.approx(0.20654, abs=1e-4), 1.0]  # Wilson of 1/1


def test_scoring_a_thousand_cases_with_every_deterministic_metric_is_fast():
    expect = Expectations(
        reference="Your order 123456 ships on Monday from the Madrid warehouse; track it with the link below.",
        must_contain=("order", "Monday"),
        must_not_contain=("sorry",),
        regex=r"\b\d{6}\b",
        max_latency_ms=2000,
        max_tokens=200,
    ).check()
    output = "Order 123456 will ship on Monday from our Madrid warehouse. Use the tracking link below."
    started = time.perf_counter()
    rows = []
    for _ in range(1000):
        result = score_case(expect, output, latency_ms=800, tokens_out=40)
        rows.append({"passed": result.passed, "metrics": result.metrics, "latency_ms": 800})
    summary = aggregate(rows)
    elapsed = time.perf_counter() - started
    assert summary["passed"] == 1000
    assert elapsed < 30  # measured about 1 s here; a generous bound for a shared two-core machine


def test_score_intervals_stay_within_the_range_the_score_can_take():
    # three BLEU scores 0.1, 0.2, 0.9: mean 0.4, s = 0.43589, t(2) = 4.303, half 1.0829 → [-0.68, 1.48] unclipped
    rows = [
        {"passed": True, "metrics": {"bleu": value, "judge_score": judge}}
        for value, judge in ((0.1, 1), (0.2, 1), (0.9, 5))
    ]
    metrics = aggregate(rows)["metrics"]
    assert metrics["bleu"]["mean"] == pytest.approx(0.4)
    assert metrics["bleu"]["ci"] == [0.0, 1.0]
    assert metrics["judge_score"]["ci"] == [1, 5]
