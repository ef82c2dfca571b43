"""Scoring one golden-set case, and the aggregates of a run: pure Python, no models, no database.

A case declares what it expects (`Expectations`); `score_case` returns only the metrics the case declares.

Pass/fail checks (each failed one adds a human-readable line to `CaseScore.failures`; a case passes when none
failed):
- `exact_match`: the output equals the reference after whitespace normalisation (and case folding unless
  `case_sensitive`) — a check only when the case sets `exact`; with a reference and no `exact` it is a score.
- `contains` / `not_contains`: every `must_contain` phrase present, no `must_not_contain` phrase present (same
  normalisation; one failure line per phrase).
- `regex`: `regex.search` anywhere in the output, as written (flags such as `(?i)` go in the pattern), with a
  timeout (`REGEX_TIMEOUT_S`): a pattern that backtracks catastrophically fails the case, it never hangs a worker.
- `json_valid` (`expect_json`, or implied by `json_schema`) and `json_schema` (Draft 2020-12, formats checked):
  the output is parsed as JSON, also when it is wholly one fenced block (three backticks, optionally `json`).
- `latency_ok` (`max_latency_ms`) and `tokens_ok` (`max_tokens`, output tokens); an unmeasured value fails.

Scores only (never fail a case; an approval policy thresholds their means in `apps.evaluation.gate`):
- with a reference: `rouge_l` (ROUGE-L F1 over Unicode words, no stemming, so Spanish accents count; the LCS
  from rapidfuzz, checked against Google's `rouge-score` in the tests), `chrf` and `bleu` (sacrebleu sentence scores, BLEU with effective order), all three
  on a 0–1 scale (sacrebleu's 0–100 divided by 100), and `exact_match` when it is not a check.
  `case_sensitive` governs every comparison (reference, phrases), so by default these fold case too;
- `embedding_similarity` (cosine, computed by the caller when an embedding model is configured);
- `judge_score` (the LLM judge's score against the rubric, `parse_judge_answer`). A malformed judge answer is
  an error on that case (`judge_error=`), not a crash.

`aggregate` turns per-case rows into a run's summary (see its docstring).
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from decimal import Decimal
from functools import cache
from typing import Any, TypedDict

import regex
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from rapidfuzz.distance import LCSseq
from referencing.exceptions import Unresolvable

from apps.feedback.agreement import mean_interval, wilson_interval

REGEX_TIMEOUT_S = 0.25
MAX_REGEX_CHARS = 1_000  # GoldenCase.regex's max_length
JUDGE_SCALE: tuple[int, int] = (1, 5)

# Metric names, in the order a summary lists them.
CHECK_METRICS = (
    "exact_match",
    "contains",
    "not_contains",
    "regex",
    "json_valid",
    "json_schema",
    "latency_ok",
    "tokens_ok",
)
SCORE_METRICS = ("rouge_l", "chrf", "bleu", "embedding_similarity", "judge_score")
# The range each score can take: a t interval on few cases reaches past it, so it is clipped to it.
SCORE_RANGE: dict[str, tuple[float, float]] = {
    "rouge_l": (0.0, 1.0),
    "chrf": (0.0, 1.0),
    "bleu": (0.0, 1.0),
    "exact_match": (0.0, 1.0),
    "embedding_similarity": (-1.0, 1.0),
}


class ExpectationError(ValueError):
    """An invalid expectation; `field` names it (the services answer 422 naming that field)."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Expectations:
    """What a golden-set case expects of an output. Every field is optional; an empty `Expectations` checks
    nothing (a judge-only or latency-only case is fine). `json_schema` implies `expect_json`."""

    reference: str = ""
    exact: bool = False
    must_contain: tuple[str, ...] = ()
    must_not_contain: tuple[str, ...] = ()
    regex: str = ""
    expect_json: bool = False
    json_schema: dict[str, Any] | None = None
    max_latency_ms: int | None = None
    max_tokens: int | None = None
    rubric: str = ""
    case_sensitive: bool = False

    def check(self) -> Expectations:
        """Raise ExpectationError on the first invalid field; return self."""
        if self.exact and not self.reference:
            raise ExpectationError("exact", "an exact match needs a reference answer")
        for name in ("must_contain", "must_not_contain"):
            for phrase in getattr(self, name):
                if not isinstance(phrase, str) or not phrase.strip():
                    raise ExpectationError(name, "phrases must be non-empty text")
        if self.regex:
            if len(self.regex) > MAX_REGEX_CHARS:
                raise ExpectationError("regex", f"longer than {MAX_REGEX_CHARS} characters")
            try:
                _compile(self.regex)
            except regex.error as exc:
                raise ExpectationError("regex", f"invalid regular expression: {exc}") from None
        if self.json_schema is not None:
            if not isinstance(self.json_schema, dict):
                raise ExpectationError("json_schema", "must be a JSON object")
            try:
                Draft202012Validator.check_schema(self.json_schema)
            except SchemaError as exc:
                where = exc.json_path if exc.path else "the schema"
                raise ExpectationError(
                    "json_schema", f"invalid JSON schema at {where}: {exc.message}"
                ) from None
            _check_references(self.json_schema, self.json_schema)
        for name in ("max_latency_ms", "max_tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ExpectationError(name, "must be a positive whole number")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Expectations:
        """Build and check expectations from their JSON form (as stored, or as an API sends them)."""
        if not isinstance(data, Mapping):
            raise ExpectationError("expectations", "must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ExpectationError(unknown[0], f"unknown field (known: {', '.join(known)})")
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = known[name].default
            if name in ("must_contain", "must_not_contain"):
                if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                    raise ExpectationError(name, "must be a list of phrases")
                value = tuple(value)
            elif isinstance(default, bool):
                if not isinstance(value, bool):
                    raise ExpectationError(name, "must be true or false")
            elif isinstance(default, str) and not isinstance(value, str):
                raise ExpectationError(name, "must be text")
            values[name] = value
        return cls(**values).check()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form, without the fields left at their defaults."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value != f.default:
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @property
    def wants_json(self) -> bool:
        return self.expect_json or self.json_schema is not None


def _check_references(node: Any, root: dict[str, Any]) -> None:
    """Only references inside the schema: nothing is ever fetched, and a pointer must point at something."""
    if isinstance(node, list):
        for item in node:
            _check_references(item, root)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key in ("$ref", "$dynamicRef") and isinstance(value, str):
            if not value.startswith("#"):
                raise ExpectationError(
                    "json_schema", f"only references inside the schema (#/…) are allowed: {value}"
                )
            if (value == "#" or value.startswith("#/")) and not _pointer_resolves(root, value[1:]):
                raise ExpectationError(
                    "json_schema", f"the reference {value} points at nothing in the schema"
                )
        else:
            _check_references(value, root)


def _pointer_resolves(root: Any, pointer: str) -> bool:
    target = root
    for part in pointer.split("/")[1:] if pointer else []:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return False
    return True


@dataclass(frozen=True)
class JudgeVerdict:
    score: float
    reason: str = ""


class JudgeAnswerError(ValueError):
    """The judge model's answer cannot be read as a verdict; the case is an error, the run goes on."""

    def __init__(self, message: str):
        self.message = message
        super().__init__(message)


@dataclass
class CaseScore:
    metrics: dict[str, float | bool] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return self.error is None and not self.failures

    @property
    def errored(self) -> bool:
        return self.error is not None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form a result row stores (and `aggregate` reads back)."""
        return {
            "passed": self.passed,
            "errored": self.errored,
            "error": self.error,
            "metrics": dict(self.metrics),
            "failures": list(self.failures),
        }


# --- text normalisation and the individual metrics ---------------------------------------------------------

_SPACES = regex.compile(r"\s+")
_WORD = regex.compile(r"[\p{L}\p{N}]+")
_FENCE = regex.compile(r"\A```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?[ \t]*```\Z", regex.DOTALL)


def normalise(text: str, *, case_sensitive: bool = False) -> str:
    """NFC, whitespace runs collapsed to one space, trimmed; case-folded unless case_sensitive."""
    text = _SPACES.sub(" ", unicodedata.normalize("NFC", text)).strip()
    return text if case_sensitive else text.casefold()


@cache
def _compile(pattern: str) -> regex.Pattern[str]:
    return regex.compile(pattern)


class _UnicodeWords:
    """Words for ROUGE-L. rouge-score's default tokenizer keeps only [a-z0-9] (so "canción" becomes "canci n"): words here are
    runs of letters and digits in any script, case-folded unless case_sensitive."""

    def __init__(self, case_sensitive: bool):
        self.case_sensitive = case_sensitive

    def tokenize(self, text: str) -> list[str]:
        return _WORD.findall(text if self.case_sensitive else text.casefold())


@cache
def _sacrebleu() -> tuple[Any, Any]:
    from sacrebleu.metrics import BLEU, CHRF

    return BLEU(effective_order=True), CHRF()


def _fold(text: str, case_sensitive: bool) -> str:
    return text if case_sensitive else text.casefold()


def rouge_l(output: str, reference: str, *, case_sensitive: bool = False) -> float:
    """ROUGE-L F1 (Lin, 2004) over words, 0–1: the longest common subsequence of the two word lists, as recall
    over the reference and precision over the output. The LCS is rapidfuzz's (C++, bit-parallel): the same
    figure as Google's `rouge-score` with this tokenizer, hundreds of times faster on long answers."""
    words = _UnicodeWords(case_sensitive)
    out, ref = words.tokenize(output), words.tokenize(reference)
    if not out or not ref:
        return 0.0
    common = LCSseq.similarity(out, ref)
    if not common:
        return 0.0
    precision, recall = common / len(out), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def chrf(output: str, reference: str, *, case_sensitive: bool = False) -> float:
    """chrF (character 6-grams, beta 2), sacrebleu's sentence score on a 0–1 scale."""
    folded = _fold(output, case_sensitive), [_fold(reference, case_sensitive)]
    return float(_sacrebleu()[1].sentence_score(*folded).score) / 100


def bleu(output: str, reference: str, *, case_sensitive: bool = False) -> float:
    """BLEU (4-grams, effective order, sacrebleu's 13a tokenizer), sentence score on a 0–1 scale."""
    folded = _fold(output, case_sensitive), [_fold(reference, case_sensitive)]
    return float(_sacrebleu()[0].sentence_score(*folded).score) / 100


def cosine_similarity(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine of the angle between two vectors of the same length, in [-1, 1]."""
    if len(a) != len(b):
        raise ValueError(f"vectors of different lengths ({len(a)} and {len(b)})")
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    if norms == 0:
        raise ValueError("cosine similarity of a zero vector is undefined")
    return max(-1.0, min(1.0, dot / norms))


def parse_json_output(output: str) -> Any:
    """The output as JSON, also when it is wholly one fenced block; raises ValueError (json's message)."""
    text = output.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1)
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


# --- one case ----------------------------------------------------------------------------------------------


def score_case(
    expect: Expectations,
    output: str,
    *,
    latency_ms: float | None,
    tokens_out: int | None,
    embedding_similarity: float | None = None,
    judge: JudgeVerdict | None = None,
    judge_error: str | None = None,
) -> CaseScore:
    """Score one output against its case's expectations (assumed checked: `Expectations.check`).

    `judge_error` (the JudgeAnswerError message, or the judge call's failure) makes the case an error:
    its deterministic metrics are still reported, but it does not pass and its scores stay out of the means.
    """
    result = CaseScore()
    metrics, failures = result.metrics, result.failures
    cs = expect.case_sensitive

    if expect.reference:
        normalised_output = normalise(output, case_sensitive=cs)
        same = normalised_output == normalise(expect.reference, case_sensitive=cs)
        metrics["exact_match"] = same
        if expect.exact and not same:
            failures.append("the output is not the reference answer")
        metrics["rouge_l"] = rouge_l(output, expect.reference, case_sensitive=cs)
        metrics["chrf"] = chrf(output, expect.reference, case_sensitive=cs)
        metrics["bleu"] = bleu(output, expect.reference, case_sensitive=cs)

    if expect.must_contain or expect.must_not_contain:
        haystack = normalise(output, case_sensitive=cs)
        if expect.must_contain:
            missing = [p for p in expect.must_contain if normalise(p, case_sensitive=cs) not in haystack]
            metrics["contains"] = not missing
            failures.extend(f"missing the phrase “{_shorten(p)}”" for p in missing)
        if expect.must_not_contain:
            present = [p for p in expect.must_not_contain if normalise(p, case_sensitive=cs) in haystack]
            metrics["not_contains"] = not present
            failures.extend(f"contains the forbidden phrase “{_shorten(p)}”" for p in present)

    if expect.regex:
        try:
            matched = _compile(expect.regex).search(output, timeout=REGEX_TIMEOUT_S) is not None
        except TimeoutError:
            metrics["regex"] = False
            failures.append(f"the pattern {_shorten(expect.regex)} timed out after {REGEX_TIMEOUT_S:g} s")
        else:
            metrics["regex"] = matched
            if not matched:
                failures.append(f"does not match the pattern {_shorten(expect.regex)}")

    if expect.wants_json:
        try:
            document = parse_json_output(output)
        except ValueError as exc:
            metrics["json_valid"] = False
            failures.append(f"not valid JSON: {exc}")
            if expect.json_schema is not None:
                metrics["json_schema"] = False
        else:
            metrics["json_valid"] = True
            if expect.json_schema is not None:
                problem = _schema_problem(expect.json_schema, document)
                metrics["json_schema"] = problem is None
                if problem:
                    failures.append(problem)

    if expect.max_latency_ms is not None:
        ok = latency_ms is not None and latency_ms <= expect.max_latency_ms
        metrics["latency_ok"] = ok
        if latency_ms is None:
            failures.append(f"latency not measured (limit {expect.max_latency_ms} ms)")
        elif not ok:
            failures.append(
                f"latency {_format_number(latency_ms)} ms over the limit of {expect.max_latency_ms} ms"
            )

    if expect.max_tokens is not None:
        ok = tokens_out is not None and tokens_out <= expect.max_tokens
        metrics["tokens_ok"] = ok
        if tokens_out is None:
            failures.append(f"output tokens not reported (limit {expect.max_tokens})")
        elif not ok:
            failures.append(f"{tokens_out} output tokens, over the limit of {expect.max_tokens}")

    if embedding_similarity is not None:
        metrics["embedding_similarity"] = float(embedding_similarity)
    if judge_error is not None:
        result.error = f"judge: {judge_error}"
    elif judge is not None:
        metrics["judge_score"] = float(judge.score)
    return result


def _schema_problem(schema: dict[str, Any], document: Any) -> str | None:
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    try:
        errors = list(validator.iter_errors(document))
    except Unresolvable as exc:
        return f"the JSON schema has a reference that cannot be resolved: {exc}"
    if not errors:
        return None
    error = best_match(errors)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"JSON schema: at {error.json_path}: {_shorten(error.message, 160)}{more}"


# --- the judge ---------------------------------------------------------------------------------------------

# The judge prompt is a catalog prompt seeded from these messages (catalog template syntax: Jinja2, variables
# only). `input` is the case's input as text, `reference` may be empty.
JUDGE_DEFAULT_TEMPLATE: list[dict[str, str]] = [
    {
        "role": "system",
        "template": (
            "You are a strict evaluator of answers given by an AI assistant. Grade the answer against the "
            "rubric only, on a scale from 1 (fails the rubric) to 5 (fully meets it). Reply with one JSON "
            'object and nothing else: {"score": <integer 1-5>, "reason": "<one or two sentences>"}.'
        ),
    },
    {
        "role": "user",
        "template": (
            "Rubric:\n{{ rubric }}\n\n"
            "Input:\n{{ input }}\n\n"
            "{% if reference %}Reference answer:\n{{ reference }}\n\n{% endif %}"
            "Answer to grade:\n{{ output }}"
        ),
    },
]

_MAX_JSON_CANDIDATES = 50


def parse_judge_answer(text: str, *, scale: tuple[float, float] = JUDGE_SCALE) -> JudgeVerdict:
    """Read the judge's verdict: a JSON object `{"score": n, "reason": "..."}`, alone, fenced, or inside prose
    (the first object with a "score" wins). The score must be a JSON number (not a boolean or a string),
    finite and within `scale`; the reason, when present, text. Raises JudgeAnswerError otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise JudgeAnswerError("the judge's answer is empty")
    verdict = _find_verdict_object(text)
    if verdict is None:
        raise JudgeAnswerError(
            f"no JSON object with a score in the judge's answer: “{_shorten(text.strip())}”"
        )
    score = verdict["score"]
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise JudgeAnswerError(f"the judge's score must be a number, not {json.dumps(score)}")
    if not math.isfinite(score):
        raise JudgeAnswerError(f"the judge's score must be a finite number, not {score}")
    low, high = scale
    if not low <= score <= high:
        raise JudgeAnswerError(
            f"the judge's score {_format_number(score)} is outside the scale "
            f"{_format_number(low)}–{_format_number(high)}"
        )
    reason = verdict.get("reason", "")
    if not isinstance(reason, str):
        raise JudgeAnswerError("the judge's reason must be text")
    return JudgeVerdict(score=float(score), reason=reason.strip())


def _find_verdict_object(text: str) -> dict[str, Any] | None:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    candidates = [fenced.group(1)] if fenced else []
    candidates.append(stripped)
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict) and "score" in value:
            return value
    decoder = json.JSONDecoder()
    start = text.find("{")
    tried = 0
    while start != -1 and tried < _MAX_JSON_CANDIDATES:
        tried += 1
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            start = text.find("{", start + 1)
            continue
        if isinstance(value, dict) and "score" in value:
            return value
        start = text.find("{", end)
    return None


# --- aggregates --------------------------------------------------------------------------------------------


class CaseRow(TypedDict, total=False):
    """One scored case as `aggregate` reads it (the services build these from their result rows)."""

    passed: bool
    errored: bool
    error: str  # CaseResult.error: non-empty means errored
    metrics: Mapping[str, float | bool]
    latency_ms: float | None
    cost: float | Decimal | None
    tokens_in: int | None
    tokens_out: int | None


def percentile_nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0 < q ≤ 100) by nearest rank: the smallest value with at least q % of the values
    at or below it — always an observed value (with 10 cases, p95 is the slowest)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def aggregate(case_rows: Iterable[CaseRow]) -> dict[str, Any]:
    """A run's summary (JSON-serialisable):

    - `cases`, `passed`, `failed` (ran, a check failed), `errors` (rows with `errored` or a non-empty `error`:
      no usable output, or a judge error);
    - `pass_rate` = passed / cases — an errored case counts as not passed — with its Wilson 95 % interval
      `pass_rate_ci`, and `error_rate`;
    - `metrics`: for every metric some case reported, over the cases that did not error: `n`, `mean` (for a
      check, the share of cases that passed it) and `ci` (Wilson for checks, Student's t for scores; None under
      two values);
    - `latency_ms`: `n`, `mean`, `p50`, `p95` (nearest rank, over every case that has a latency), `max`;
    - `cost`: `total` and `per_case` (total / cases), None when no case reports one;
    - `tokens`: `in` and `out` totals and `out_per_case` (over the cases that report them).
    """
    cases = passed = errors = 0
    by_metric: dict[str, list[float]] = {}
    checks: set[str] = set()
    latencies: list[float] = []
    cost_total = Decimal(0)
    any_cost = False
    tokens_in = tokens_out = tokens_out_cases = 0
    for row in case_rows:
        cases += 1
        errored = bool(row.get("errored") or row.get("error"))
        if errored:
            errors += 1
        elif row.get("passed"):
            passed += 1
        if not errored:
            for name, value in (row.get("metrics") or {}).items():
                if isinstance(value, bool):
                    checks.add(name)
                by_metric.setdefault(name, []).append(float(value))
        latency = row.get("latency_ms")
        if latency is not None:
            latencies.append(float(latency))
        cost = row.get("cost")
        if cost is not None:
            any_cost = True
            cost_total += cost if isinstance(cost, Decimal) else Decimal(str(cost))
        if row.get("tokens_in") is not None:
            tokens_in += int(row["tokens_in"] or 0)
        if row.get("tokens_out") is not None:
            tokens_out += int(row["tokens_out"] or 0)
            tokens_out_cases += 1

    order = {name: i for i, name in enumerate(CHECK_METRICS + SCORE_METRICS)}
    metrics: dict[str, dict[str, Any]] = {}
    for name in sorted(by_metric, key=lambda n: (order.get(n, len(order)), n)):
        values = by_metric[name]
        n = len(values)
        mean = math.fsum(values) / n
        ci = wilson_interval(round(sum(values)), n) if name in checks else mean_interval(values)
        low, high = JUDGE_SCALE if name == "judge_score" else SCORE_RANGE.get(name, (-math.inf, math.inf))
        if ci is not None:
            ci = (max(ci[0], low), min(ci[1], high))
        metrics[name] = {"n": n, "mean": mean, "ci": list(ci) if ci else None}

    pass_ci = wilson_interval(passed, cases)
    return {
        "cases": cases,
        "passed": passed,
        "failed": cases - passed - errors,
        "errors": errors,
        "pass_rate": passed / cases if cases else None,
        "pass_rate_ci": list(pass_ci) if pass_ci else None,
        "error_rate": errors / cases if cases else None,
        "metrics": metrics,
        "latency_ms": {
            "n": len(latencies),
            "mean": math.fsum(latencies) / len(latencies) if latencies else None,
            "p50": percentile_nearest_rank(latencies, 50),
            "p95": percentile_nearest_rank(latencies, 95),
            "max": max(latencies) if latencies else None,
        },
        "cost": {
            "total": float(cost_total) if any_cost else None,
            "per_case": float(cost_total / cases) if any_cost and cases else None,
        },
        "tokens": {
            "in": tokens_in,
            "out": tokens_out,
            "out_per_case": tokens_out / tokens_out_cases if tokens_out_cases else None,
        },
    }
