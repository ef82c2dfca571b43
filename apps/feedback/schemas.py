"""Rating schemas: what a schema's criteria look like, and the validation of an annotation's values.

A criterion is a JSON object:

    {"name": "helpfulness", "kind": "scale", "min": 1, "max": 5, "guidance": "5: solves the problem"}
    {"name": "ok", "kind": "thumbs"}
    {"name": "topic", "kind": "labels", "labels": ["billing", "delivery", "other"]}
    {"name": "better", "kind": "preference"}            (pairwise queues: "A" or "B")
    {"name": "corrected", "kind": "text", "required": false}   (a corrected answer)

A rubric is several criteria. Values are `{criterion name: value}`: thumbs true/false, a scale an integer
within [min, max], labels one of the labels, preference "A" or "B", text a string.
"""

import re
from typing import Any

from apps.common.exceptions import Unprocessable
from apps.feedback.models import CriterionKind

NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_CRITERIA = 12
MAX_LABELS = 20
MAX_SCALE_SPAN = 10
MAX_TEXT = 20_000
MAX_GUIDANCE = 2000
PREFERENCES = ("A", "B")
KINDS = tuple(CriterionKind.values)
# The level of measurement of each kind, for the agreement figures.
NOMINAL_KINDS = {CriterionKind.THUMBS, CriterionKind.LABELS, CriterionKind.PREFERENCE}
NUMERIC_KINDS = {CriterionKind.THUMBS, CriterionKind.SCALE}


def _invalid(message: str, **details: Any) -> Unprocessable:
    return Unprocessable(message, code="invalid_schema", details=details)


def criteria_validate(criteria: Any) -> list[dict[str, Any]]:
    """The criteria, normalised (defaults filled in), or 422 naming the first problem."""
    if not isinstance(criteria, list) or not criteria:
        raise _invalid("A schema needs a list of at least one criterion.")
    if len(criteria) > MAX_CRITERIA:
        raise _invalid(f"At most {MAX_CRITERIA} criteria per schema.", limit=MAX_CRITERIA)
    seen: set[str] = set()
    out = []
    for index, raw in enumerate(criteria):
        if not isinstance(raw, dict):
            raise _invalid(f"Criterion {index} must be an object.", index=index)
        name = raw.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise _invalid(
                f"Criterion {index}: the name must be lowercase letters, digits and '_' (at most 40), "
                "starting with a letter.",
                index=index,
            )
        if name in seen:
            raise _invalid(f"Criterion {name!r} appears twice.", index=index, criterion=name)
        seen.add(name)
        kind = raw.get("kind")
        if kind not in KINDS:
            raise _invalid(
                f"Criterion {name!r}: kind must be one of {', '.join(KINDS)}.", index=index, criterion=name
            )
        known = {"name", "kind", "guidance", "required", "min", "max", "labels"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise _invalid(f"Criterion {name!r}: unknown keys {', '.join(unknown)}.", criterion=name)
        guidance = raw.get("guidance", "")
        if not isinstance(guidance, str) or len(guidance) > MAX_GUIDANCE:
            raise _invalid(f"Criterion {name!r}: guidance is text of at most {MAX_GUIDANCE} characters.")
        required = raw.get("required", kind != CriterionKind.TEXT)
        if not isinstance(required, bool):
            raise _invalid(f"Criterion {name!r}: required is true or false.", criterion=name)
        criterion: dict[str, Any] = {"name": name, "kind": kind, "guidance": guidance, "required": required}
        if kind == CriterionKind.SCALE:
            low, high = raw.get("min", 1), raw.get("max", 5)
            if not (isinstance(low, int) and isinstance(high, int)) or isinstance(low, bool) or low >= high:
                raise _invalid(f"Criterion {name!r}: a scale needs integers min < max.", criterion=name)
            if high - low > MAX_SCALE_SPAN:
                raise _invalid(f"Criterion {name!r}: a scale spans at most {MAX_SCALE_SPAN} steps.")
            criterion |= {"min": low, "max": high}
        elif "min" in raw or "max" in raw:
            raise _invalid(f"Criterion {name!r}: only a scale has min and max.", criterion=name)
        if kind == CriterionKind.LABELS:
            labels = raw.get("labels")
            if (
                not isinstance(labels, list)
                or not 2 <= len(labels) <= MAX_LABELS
                or not all(isinstance(x, str) and 0 < len(x) <= 60 for x in labels)
                or len(set(labels)) != len(labels)
            ):
                raise _invalid(
                    f"Criterion {name!r}: labels must be 2 to {MAX_LABELS} distinct texts.", criterion=name
                )
            criterion["labels"] = labels
        elif "labels" in raw:
            raise _invalid(f"Criterion {name!r}: only a labels criterion has labels.", criterion=name)
        out.append(criterion)
    return out


def schema_has_preference(criteria: list[dict[str, Any]]) -> bool:
    return any(c["kind"] == CriterionKind.PREFERENCE for c in criteria)


def _off(criterion: dict[str, Any], message: str, **details: Any) -> Unprocessable:
    return Unprocessable(message, code="invalid_rating", details={"criterion": criterion["name"], **details})


def values_validate(criteria: list[dict[str, Any]], values: Any) -> dict[str, Any]:
    """An annotation's values checked against the schema: 422 naming the criterion and what it allows."""
    if not isinstance(values, dict):
        raise Unprocessable("The values must be an object {criterion: value}.", code="invalid_rating")
    by_name = {c["name"]: c for c in criteria}
    unknown = sorted(set(values) - set(by_name))
    if unknown:
        raise Unprocessable(
            f"Unknown criteria: {', '.join(unknown)}.",
            code="invalid_rating",
            details={"unknown": unknown, "criteria": list(by_name)},
        )
    clean: dict[str, Any] = {}
    for criterion in criteria:
        name, kind = criterion["name"], criterion["kind"]
        value = values.get(name)
        if value is None or value == "":
            if criterion["required"]:
                raise _off(criterion, f"{name}: a value is required.")
            continue
        if kind == CriterionKind.THUMBS:
            if not isinstance(value, bool):
                raise _off(criterion, f"{name}: thumbs up (true) or down (false).", allowed=[True, False])
        elif kind == CriterionKind.SCALE:
            low, high = criterion["min"], criterion["max"]
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise _off(
                    criterion,
                    f"{name}: {value!r} is off the scale; allowed: whole numbers from {low} to {high}.",
                    min=low,
                    max=high,
                )
        elif kind == CriterionKind.LABELS:
            if value not in criterion["labels"]:
                raise _off(
                    criterion,
                    f"{name}: {value!r} is not one of the labels ({', '.join(criterion['labels'])}).",
                    allowed=criterion["labels"],
                )
        elif kind == CriterionKind.PREFERENCE:
            if value not in PREFERENCES:
                raise _off(criterion, f"{name}: answer A or B.", allowed=list(PREFERENCES))
        elif kind == CriterionKind.TEXT and (not isinstance(value, str) or len(value) > MAX_TEXT):
            raise _off(criterion, f"{name}: text of at most {MAX_TEXT} characters.", limit=MAX_TEXT)
        clean[name] = value
    return clean


def numeric(criterion: dict[str, Any], value: Any) -> float | None:
    """A value as a number for means (thumbs up 1, down 0; a scale its value), else None."""
    if value is None:
        return None
    if criterion["kind"] == CriterionKind.THUMBS:
        return 1.0 if value else 0.0
    if criterion["kind"] == CriterionKind.SCALE:
        return float(value)
    return None
