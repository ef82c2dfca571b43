"""Golden sets: services (writes) and selectors (reads).

A golden set is versioned copy-on-write: every edit — a case added, changed or removed, an import — makes a
new `GoldenSetVersion` holding the whole list of cases, so that a run names exactly the cases it scored.
A version's `content_hash` is the sha256 of its cases' canonical JSON (`case_canonical`, provenance left
out): two versions with the same cases have the same hash, and a new version identical to the latest one is
refused (409 `golden_set_unchanged`), since it would only make the gate ask for a new run.

Cases come from the UI or the API (one at a time or the whole list), from a JSONL or CSV import (all or
nothing: the first bad line is named with its field, and nothing is written), from a logged event (its
redacted input and output) and from an annotator's corrected answer.

Variables of a case made from a logged event (the event holds the rendered messages, not the variables):
1. the variables the caller gives (the form, the API), when any;
2. else the event's `metadata["variables"]`, when the application logged them (an object);
3. else, when the prompt (the golden set's, or the event's prompt in the team) has exactly one variable, the
   text of the event's last user message becomes that variable;
4. else the case is refused (422 `variables_required`), naming the prompt's variables for the user to map.

Who reads: the team's catalog readers; who writes: those who author prompts (engineers and administrators).
"""

import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import fields as dataclass_fields
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Max, OuterRef, Q, QuerySet, Subquery

from apps.accounts.models import Team, User
from apps.accounts.roles import CATALOG_AUTHORS, CATALOG_READERS
from apps.accounts.selectors import user_has_role, user_team_ids
from apps.audit.services import audit_event_record
from apps.catalog.models import Prompt, PromptVersion, name_validator
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.evaluation.metrics import ExpectationError, Expectations
from apps.evaluation.models import CaseSource, GoldenCase, GoldenSet, GoldenSetVersion

MAX_CASES = 10_000
MAX_IMPORT_BYTES = 20 * 1024 * 1024
MAX_LIST_ITEMS = 50
MAX_ITEM_CHARS = 1000

# The fields of a case, in the order they are exported. `source` and `source_ref` are provenance: exported
# and imported, but not part of the content hash.
# What a case expects of an answer: exactly the metrics module's Expectations, in its order.
EXPECTATION_FIELDS = tuple(f.name for f in dataclass_fields(Expectations))
PROVENANCE = ("source", "source_ref")
CASE_FIELDS = ("name", "variables", *EXPECTATION_FIELDS, *PROVENANCE)
DEFAULTS: dict[str, Any] = {
    "name": "",
    "variables": {},
    "reference": "",
    "exact": False,
    "must_contain": [],
    "must_not_contain": [],
    "regex": "",
    "expect_json": False,
    "json_schema": None,
    "max_latency_ms": None,
    "max_tokens": None,
    "rubric": "",
    "case_sensitive": False,
    "source": CaseSource.MANUAL.value,
    "source_ref": "",
}
TEXT_LIMITS = {"name": 200, "reference": 20_000, "regex": 1000, "rubric": 5000, "source_ref": 200}
BOOL_FIELDS = ("exact", "expect_json", "case_sensitive")
INT_FIELDS = ("max_latency_ms", "max_tokens")
LIST_FIELDS = ("must_contain", "must_not_contain")
JSON_FIELDS = ("variables", "json_schema")  # JSON text in a CSV cell
FORMATS = ("jsonl", "csv")


class CaseError(Unprocessable):
    """A case that cannot be kept: names the case (or import line) and the field."""

    def __init__(self, message: str, *, field: str | None, where: str, details: dict[str, Any]):
        prefix = f"{where}, field {field}" if field else where
        super().__init__(f"{prefix}: {message}", code="invalid_case", details=details | {"field": field})


# Cases: validation and canonical form


def _case_error(message: str, field: str | None, *, index: int | None, line: int | None) -> CaseError:
    if line is not None:
        return CaseError(message, field=field, where=f"line {line}", details={"line": line})
    number = (index or 0) + 1
    return CaseError(message, field=field, where=f"case {number}", details={"case": number})


def _check_expectations(case: dict[str, Any]) -> tuple[str, str] | None:
    """(field, problem) for an expectation the metrics module could never check (a regular expression that
    does not compile, a JSON schema that is not a valid schema or references outside itself, …), else None.
    The scoring code's own validation, so that what is saved is what can be scored."""
    try:
        Expectations.from_dict({name: case[name] for name in EXPECTATION_FIELDS})
    except ExpectationError as exc:
        return exc.field, exc.message.rstrip(".") + "."
    return None


def case_clean(raw: Any, *, index: int | None = None, line: int | None = None) -> dict[str, Any]:
    """A case from untrusted input, checked and completed with defaults, in CASE_FIELDS order. Raises
    CaseError naming the case (or the import line) and the field."""

    def fail(message: str, field: str | None = None) -> CaseError:
        return _case_error(message, field, index=index, line=line)

    if not isinstance(raw, dict):
        raise fail("a case is an object.")
    unknown = sorted(str(k) for k in raw if k not in CASE_FIELDS)
    if unknown:
        raise fail(f"unknown field(s) {', '.join(unknown)}.", unknown[0])
    case = {name: raw.get(name, DEFAULTS[name]) for name in CASE_FIELDS}
    for name in CASE_FIELDS:
        if case[name] is None and DEFAULTS[name] is not None:
            case[name] = DEFAULTS[name]
    for name, limit in TEXT_LIMITS.items():
        if not isinstance(case[name], str):
            raise fail("must be text.", name)
        if len(case[name]) > limit:
            raise fail(f"at most {limit} characters.", name)
    case["name"] = case["name"].strip()
    for name in BOOL_FIELDS:
        if not isinstance(case[name], bool):
            raise fail("must be true or false.", name)
    for name in INT_FIELDS:
        value = case[name]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise fail("a whole number of at least 1, or empty.", name)
    for name in LIST_FIELDS:
        value = case[name]
        if not isinstance(value, list) or len(value) > MAX_LIST_ITEMS:
            raise fail(f"a list of at most {MAX_LIST_ITEMS} texts.", name)
        for item in value:
            if not isinstance(item, str) or not item or len(item) > MAX_ITEM_CHARS:
                raise fail(f"each item is non-empty text of at most {MAX_ITEM_CHARS} characters.", name)
    if not isinstance(case["variables"], dict):
        raise fail("an object {variable: value}.", "variables")
    if case["source"] not in CaseSource.values:
        raise fail(f"one of {', '.join(CaseSource.values)}.", "source")
    if case["exact"] and not case["reference"]:
        raise fail("an exact match needs a reference answer.", "exact")
    problem = _check_expectations(case)
    if problem is not None:
        raise fail(problem[1], problem[0])
    if case["json_schema"] is not None:
        case["expect_json"] = True  # an answer checked against a schema must be JSON
    expectations = [case[n] for n in ("reference", "must_contain", "must_not_contain", "regex", "rubric")]
    expectations += [case["expect_json"], case["max_latency_ms"] is not None, case["max_tokens"] is not None]
    if not any(expectations):
        raise fail(
            "the case expects nothing: give a reference, must contain / must not contain, a regular "
            "expression, JSON, a maximum latency or tokens, or a rubric."
        )
    return case


def case_canonical(case: GoldenCase | dict[str, Any]) -> dict[str, Any]:
    """A case as a dict in CASE_FIELDS order (what is exported)."""
    if isinstance(case, GoldenCase):
        return {name: getattr(case, name) for name in CASE_FIELDS}
    return {name: case.get(name, DEFAULTS[name]) for name in CASE_FIELDS}


def cases_content_hash(cases: Iterable[dict[str, Any]]) -> str:
    """sha256 of the cases' canonical JSON (sorted keys, no spaces, UTF-8), provenance left out."""
    content = [{k: v for k, v in case_canonical(c).items() if k not in PROVENANCE} for c in cases]
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


# Import and export


def _decode(content: str | bytes) -> str:
    if isinstance(content, bytes):
        if len(content) > MAX_IMPORT_BYTES:
            raise Unprocessable(
                f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.", code="import_too_large"
            )
        try:
            return content.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise Unprocessable(
                f"The file is not UTF-8 text (byte {exc.start}).", code="invalid_import"
            ) from None
    return content.removeprefix("\ufeff")


def cases_parse(content: str | bytes, fmt: str) -> list[dict[str, Any]]:
    """Cases from a JSONL or CSV file, each checked; the first problem raises, naming its line and field."""
    text = _decode(content)
    if fmt == "jsonl":
        cases = _parse_jsonl(text)
    elif fmt == "csv":
        cases = _parse_csv(text)
    else:
        raise Unprocessable(f"format: one of {', '.join(FORMATS)}.", code="invalid_format")
    if not cases:
        raise Unprocessable("The file holds no case.", code="invalid_import")
    if len(cases) > MAX_CASES:
        raise Unprocessable(f"At most {MAX_CASES} cases in a golden set.", code="too_many_cases")
    return cases


def _parse_jsonl(text: str) -> list[dict[str, Any]]:
    cases = []
    for number, row in enumerate(text.splitlines(), start=1):
        if not row.strip():
            continue
        try:
            raw = json.loads(row)
        except json.JSONDecodeError as exc:
            raise _case_error(
                f"not valid JSON ({exc.msg} at column {exc.colno}).", None, index=None, line=number
            ) from None
        if isinstance(raw, dict) and not raw.get("source"):
            raw["source"] = CaseSource.IMPORT.value
        cases.append(case_clean(raw, line=number))
    return cases


def _csv_cell(name: str, cell: str, line: int) -> Any:
    cell = cell if cell is not None else ""
    if name in BOOL_FIELDS:
        value = cell.strip().lower()
        if value in ("", "false", "0", "no"):
            return False
        if value in ("true", "1", "yes"):
            return True
        raise _case_error(f"true or false, not {cell!r}.", name, index=None, line=line)
    if name in INT_FIELDS:
        if not cell.strip():
            return None
        try:
            return int(cell.strip())
        except ValueError:
            raise _case_error(f"a whole number, not {cell!r}.", name, index=None, line=line) from None
    if name in JSON_FIELDS or name in LIST_FIELDS:
        if not cell.strip():
            return DEFAULTS[name]
        try:
            return json.loads(cell)
        except json.JSONDecodeError as exc:
            raise _case_error(f"not valid JSON ({exc.msg}).", name, index=None, line=line) from None
    return cell


def _parse_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return []
    except csv.Error as exc:
        raise _case_error(f"not valid CSV ({exc}).", None, index=None, line=1) from None
    header = [h.strip() for h in header]
    unknown = [h for h in header if h not in CASE_FIELDS]
    if unknown:
        raise _case_error(
            f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(CASE_FIELDS)}.",
            unknown[0],
            index=None,
            line=1,
        )
    if len(set(header)) != len(header):
        raise _case_error("a column appears twice.", None, index=None, line=1)
    cases = []
    start = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise _case_error(f"not valid CSV ({exc}).", None, index=None, line=start) from None
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise _case_error(
                f"{len(row)} cells where the header has {len(header)} columns.", None, index=None, line=line
            )
        raw = {name: _csv_cell(name, cell, line) for name, cell in zip(header, row, strict=True)}
        if not raw.get("source"):
            raw["source"] = CaseSource.IMPORT.value
        cases.append(case_clean(raw, line=line))
    return cases


def cases_export(cases: Iterable[GoldenCase | dict[str, Any]], fmt: str) -> str:
    """JSONL (one case object per line) or CSV (a header of CASE_FIELDS; lists, variables and the schema as
    JSON text, booleans true/false, empty cells for none). Importing the export gives the same cases."""
    rows = [case_canonical(c) for c in cases]
    if fmt == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if fmt != "csv":
        raise Unprocessable(f"format: one of {', '.join(FORMATS)}.", code="invalid_format")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CASE_FIELDS)
    for row in rows:
        cells = []
        for name in CASE_FIELDS:
            value = row[name]
            if name in BOOL_FIELDS:
                cells.append("true" if value else "false")
            elif name in INT_FIELDS:
                cells.append("" if value is None else str(value))
            elif name in JSON_FIELDS or name in LIST_FIELDS:
                empty = value in (None, {}, [])
                cells.append("" if empty else json.dumps(value, ensure_ascii=False, separators=(",", ":")))
            else:
                cells.append(value)
        writer.writerow(cells)
    return out.getvalue()


# Selectors


def golden_sets_for(
    *, user: User, team_id: int | None = None, prompt: Prompt | None = None
) -> QuerySet[GoldenSet]:
    """The golden sets the user reads (catalog readers of their team), optionally of one team or prompt."""
    qs = GoldenSet.objects.filter(team_id__in=user_team_ids(user, CATALOG_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if prompt is not None:
        qs = qs.filter(prompt=prompt)
    return qs.select_related("team", "prompt", "created_by").order_by("team__slug", "name")


def golden_sets_with_latest(sets: Iterable[GoldenSet]) -> list[GoldenSet]:
    """The sets, each with `.latest` (its latest version, or None), in two queries for the whole page."""
    sets = list(sets)
    newest = (
        GoldenSetVersion.objects.filter(golden_set_id=OuterRef("golden_set_id"))
        .order_by("-number")
        .values("pk")[:1]
    )
    latest = {
        v.golden_set_id: v
        for v in GoldenSetVersion.objects.filter(golden_set_id__in=[s.pk for s in sets])
        .filter(pk=Subquery(newest))
        .select_related("created_by")
    }
    for golden_set in sets:
        golden_set.latest = latest.get(golden_set.pk)  # type: ignore[attr-defined]
    return sets


def golden_set_get(*, user: User, golden_set_id: int) -> GoldenSet:
    found = golden_sets_for(user=user).filter(pk=golden_set_id).first()
    if found is None:
        raise NotFound("No such golden set.")
    return found


def golden_set_latest_version(*, golden_set: GoldenSet) -> GoldenSetVersion | None:
    return golden_set.versions.select_related("created_by").order_by("-number").first()


def golden_set_versions(*, golden_set: GoldenSet) -> QuerySet[GoldenSetVersion]:
    return golden_set.versions.select_related("created_by").order_by("-number")


def golden_set_version_get(*, golden_set: GoldenSet, number: int) -> GoldenSetVersion:
    version = golden_set.versions.select_related("created_by").filter(number=number).first()
    if version is None:
        raise NotFound(f"{golden_set.name} has no version {number}.")
    return version


def golden_cases(*, version: GoldenSetVersion) -> list[GoldenCase]:
    return list(version.cases.order_by("position"))


def golden_sets_applicable(*, prompt: Prompt) -> QuerySet[GoldenSet]:
    """The sets a prompt's versions are evaluated on: the prompt's own, and those shared in its team.
    No user: the caller has already checked that the prompt may be read."""
    return (
        GoldenSet.objects.filter(team_id=prompt.team_id)
        .filter(Q(prompt=prompt) | Q(prompt__isnull=True))
        .select_related("team", "prompt")
        .order_by("name")
    )


def golden_set_can_write(
    *, user: User, golden_set: GoldenSet | None = None, team_id: int | None = None
) -> bool:
    return user_has_role(user, golden_set.team_id if golden_set is not None else team_id, CATALOG_AUTHORS)


def prompt_variable_names(prompt: Prompt | None) -> list[str]:
    """The variables of a prompt's newest version (what a case's variables are mapped to)."""
    if prompt is None:
        return []
    version = PromptVersion.objects.filter(prompt=prompt).order_by("-number").only("variables").first()
    return list(version.variables) if version is not None else []


# Services


def _require_writer(actor: User, team_id: int) -> None:
    if not user_has_role(actor, team_id, CATALOG_AUTHORS):
        raise PermissionDenied("You cannot edit golden sets in this team.")


def _clean_all(cases: Any) -> list[dict[str, Any]]:
    if not isinstance(cases, list):
        raise Unprocessable("cases: a list of cases.", code="invalid_case")
    if len(cases) > MAX_CASES:
        raise Unprocessable(f"At most {MAX_CASES} cases in a golden set.", code="too_many_cases")
    return [case_clean(c, index=i) for i, c in enumerate(cases)]


@transaction.atomic
def golden_set_create(
    *,
    actor: User,
    team: Team,
    name: str,
    description: str = "",
    prompt: Prompt | None = None,
    cases: list[dict[str, Any]] | None = None,
    message: str = "",
) -> GoldenSet:
    """A golden set of a prompt (or shared in the team when `prompt` is None) with its version 1."""
    _require_writer(actor, team.pk)
    try:
        name_validator(name)
    except ValidationError:
        raise Unprocessable(
            "name: use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit (at most 100).",
            code="invalid_name",
            details={"field": "name"},
        ) from None
    if len(description) > 2000:
        raise Unprocessable("description: at most 2000 characters.", code="invalid_description")
    if prompt is not None and prompt.team_id != team.pk:
        raise Unprocessable(
            "prompt: the golden set and its prompt belong to the same team.", code="invalid_prompt"
        )
    clean = _clean_all(cases or [])
    try:
        with transaction.atomic():
            golden_set = GoldenSet.objects.create(
                team=team, name=name, description=description, prompt=prompt, created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            f"A golden set named {name!r} already exists in {team.slug}.", code="golden_set_exists"
        ) from None
    audit_event_record(
        actor=actor,
        action="evaluation.golden_set_created",
        target=golden_set,
        changes={"name": name, "description": description, "prompt": prompt.name if prompt else None},
    )
    _version_write(actor=actor, golden_set=golden_set, cases=clean, message=message or "Created")
    return golden_set


@transaction.atomic
def golden_set_update(*, actor: User, golden_set: GoldenSet, description: str | None = None) -> GoldenSet:
    """Its description (the cases change through new versions)."""
    _require_writer(actor, golden_set.team_id)
    golden_set = (
        GoldenSet.objects.select_for_update(of=("self",))
        .select_related("team", "prompt")
        .get(pk=golden_set.pk)
    )
    if description is not None and description != golden_set.description:
        if len(description) > 2000:
            raise Unprocessable("description: at most 2000 characters.", code="invalid_description")
        before = golden_set.description
        golden_set.description = description
        golden_set.save(update_fields=["description", "updated_at"])
        audit_event_record(
            actor=actor,
            action="evaluation.golden_set_updated",
            target=golden_set,
            changes={"description": {"from": before, "to": description}},
        )
    return golden_set


def _version_write(
    *, actor: User, golden_set: GoldenSet, cases: list[dict[str, Any]], message: str
) -> GoldenSetVersion:
    """Write one version of already-cleaned cases (inside the caller's transaction, the set locked)."""
    latest = golden_set.versions.order_by("-number").first()
    digest = cases_content_hash(cases)
    if latest is not None and latest.content_hash == digest:
        raise Conflict(
            f"These cases are the same as version {latest.number}: nothing to save.",
            code="golden_set_unchanged",
            details={"version": latest.number},
        )
    number = (golden_set.versions.aggregate(n=Max("number"))["n"] or 0) + 1
    version = GoldenSetVersion.objects.create(
        golden_set=golden_set,
        number=number,
        message=message[:500],
        content_hash=digest,
        case_count=len(cases),
        created_by=actor,
    )
    GoldenCase.objects.bulk_create(
        [GoldenCase(version=version, position=i, **case) for i, case in enumerate(cases, start=1)],
        batch_size=500,
    )
    audit_event_record(
        actor=actor,
        action="evaluation.golden_set_version_created",
        target=golden_set,
        changes={
            "version": number,
            "case_count": len(cases),
            "content_hash": digest,
            "message": version.message,
        },
    )
    return version


def _locked(actor: User, golden_set: GoldenSet, base_version: int | None) -> tuple[GoldenSet, list[dict]]:
    """The set, locked against concurrent edits, and its latest cases; `base_version` (the version the
    user edited) must still be the latest."""
    _require_writer(actor, golden_set.team_id)
    golden_set = (
        GoldenSet.objects.select_for_update(of=("self",))
        .select_related("team", "prompt")
        .get(pk=golden_set.pk)
    )
    latest = golden_set.versions.order_by("-number").first()
    if base_version is not None and (latest is None or latest.number != base_version):
        raise Conflict(
            f"The golden set changed since you opened it: version {latest.number if latest else 0} is "
            "the latest. Reload and edit again.",
            code="golden_set_changed",
            details={"latest": latest.number if latest else None},
        )
    cases = [case_canonical(c) for c in latest.cases.order_by("position")] if latest else []
    return golden_set, cases


@transaction.atomic
def golden_set_version_create(
    *,
    actor: User,
    golden_set: GoldenSet,
    cases: list[dict[str, Any]],
    message: str = "",
    base_version: int | None = None,
) -> GoldenSetVersion:
    """A new version holding exactly these cases."""
    clean = _clean_all(cases)
    golden_set, _ = _locked(actor, golden_set, base_version)
    return _version_write(actor=actor, golden_set=golden_set, cases=clean, message=message)


def _position_index(cases: list[dict[str, Any]], position: int) -> int:
    if not 1 <= position <= len(cases):
        raise NotFound(f"The latest version has no case {position}.", code="case_not_found")
    return position - 1


@transaction.atomic
def golden_case_add(
    *,
    actor: User,
    golden_set: GoldenSet,
    case: dict[str, Any],
    message: str = "",
    base_version: int | None = None,
) -> GoldenSetVersion:
    golden_set, cases = _locked(actor, golden_set, base_version)
    cases.append(case_clean(case, index=len(cases)))
    return _version_write(
        actor=actor, golden_set=golden_set, cases=cases, message=message or f"Added case {len(cases)}"
    )


@transaction.atomic
def golden_case_update(
    *,
    actor: User,
    golden_set: GoldenSet,
    position: int,
    case: dict[str, Any],
    message: str = "",
    base_version: int | None = None,
) -> GoldenSetVersion:
    golden_set, cases = _locked(actor, golden_set, base_version)
    index = _position_index(cases, position)
    cases[index] = case_clean(case, index=index)
    return _version_write(
        actor=actor, golden_set=golden_set, cases=cases, message=message or f"Changed case {position}"
    )


@transaction.atomic
def golden_case_remove(
    *,
    actor: User,
    golden_set: GoldenSet,
    position: int,
    message: str = "",
    base_version: int | None = None,
) -> GoldenSetVersion:
    golden_set, cases = _locked(actor, golden_set, base_version)
    del cases[_position_index(cases, position)]
    return _version_write(
        actor=actor, golden_set=golden_set, cases=cases, message=message or f"Removed case {position}"
    )


@transaction.atomic
def golden_set_import(
    *,
    actor: User,
    golden_set: GoldenSet,
    content: str | bytes,
    fmt: str,
    append: bool = False,
    message: str = "",
) -> GoldenSetVersion:
    """A new version from a JSONL or CSV file: its cases replace the latest ones (or follow them with
    `append`). All or nothing: the first bad line raises (naming it and its field) and nothing is written."""
    _require_writer(actor, golden_set.team_id)
    imported = cases_parse(content, fmt)
    golden_set, cases = _locked(actor, golden_set, None)
    cases = [*cases, *imported] if append else imported
    if len(cases) > MAX_CASES:
        raise Unprocessable(f"At most {MAX_CASES} cases in a golden set.", code="too_many_cases")
    default = f"Imported {len(imported)} cases ({fmt.upper()})"
    return _version_write(actor=actor, golden_set=golden_set, cases=cases, message=message or default)


# Cases from logs and annotations


def _last_user_text(messages: Any) -> str | None:
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
    return None


def _event_prompt(event: Any, golden_set: GoldenSet) -> Prompt | None:
    if golden_set.prompt is not None:
        return golden_set.prompt
    if event.prompt:
        return Prompt.objects.filter(team_id=event.team_id, name=event.prompt).first()
    return None


def case_variables_from_event(
    *, event: Any, golden_set: GoldenSet, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The variables of a case made from a logged event, by the rule in this module's docstring."""
    if variables:
        return dict(variables)
    logged = event.metadata.get("variables") if isinstance(event.metadata, dict) else None
    if isinstance(logged, dict) and logged:
        return dict(logged)
    names = prompt_variable_names(_event_prompt(event, golden_set))
    text = _last_user_text(event.input)
    if len(names) == 1 and text is not None:
        return {names[0]: text}
    raise Unprocessable(
        "Give the case's variables: the event did not log them (metadata.variables) and the prompt "
        + (f"has the variables {', '.join(names)}." if names else "is unknown or has no single variable."),
        code="variables_required",
        details={"variables": names},
    )


def case_draft_from_event(
    *,
    event: Any,
    golden_set: GoldenSet,
    reference: str | None = None,
    variables: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The case a logged event suggests: its variables (when they can be found) and its redacted answer as
    the reference. Not saved: the UI shows it for editing."""
    try:
        found = case_variables_from_event(event=event, golden_set=golden_set, variables=variables)
    except Unprocessable:
        found = dict.fromkeys(prompt_variable_names(_event_prompt(event, golden_set)), "")
    return DEFAULTS | {
        "name": f"{event.prompt or 'event'} {event.request_id}"[:200],
        "variables": found,
        "reference": event.output if reference is None else reference,
        "source": CaseSource.LOG.value,
        "source_ref": event.request_id[:200],
    }


@transaction.atomic
def golden_case_from_log_event(
    *,
    actor: User,
    golden_set: GoldenSet,
    event: Any,
    variables: dict[str, Any] | None = None,
    case: dict[str, Any] | None = None,
    message: str = "",
) -> GoldenSetVersion:
    """A new version with one more case, made from a stored (redacted) log event of the set's team. The
    event's answer becomes the reference unless `case` gives the expectations."""
    if event.team_id != golden_set.team_id:
        raise NotFound("No such log event in this golden set's team.", code="event_not_found")
    fields = dict(case or {})
    fields["variables"] = case_variables_from_event(
        event=event, golden_set=golden_set, variables=variables or fields.get("variables")
    )
    fields.setdefault("reference", event.output)
    fields.setdefault("name", f"{event.prompt or 'event'} {event.request_id}"[:200])
    fields |= {"source": CaseSource.LOG.value, "source_ref": event.request_id[:200]}
    return golden_case_add(
        actor=actor,
        golden_set=golden_set,
        case=fields,
        message=message or f"Case from log event {event.request_id}"[:500],
    )


def corrected_text(annotation: Any, criterion: str | None = None) -> tuple[str, str]:
    """(criterion name, corrected answer) of an annotation: the named text criterion, else the schema's
    text criterion called `corrected`, else its only text criterion."""
    from apps.feedback.models import CriterionKind

    texts = [c["name"] for c in annotation.queue.schema.criteria if c["kind"] == CriterionKind.TEXT]
    if criterion is None:
        criterion = "corrected" if "corrected" in texts else (texts[0] if len(texts) == 1 else None)
    if criterion is None or criterion not in texts:
        raise Unprocessable(
            "The annotation's schema has no corrected-answer (text) criterion"
            + (f" named {criterion!r}." if criterion else "."),
            code="no_corrected_answer",
            details={"criteria": texts},
        )
    value = annotation.values.get(criterion)
    if not isinstance(value, str) or not value.strip():
        raise Unprocessable(
            f"The annotator gave no corrected answer ({criterion}).", code="no_corrected_answer"
        )
    return criterion, value


@transaction.atomic
def golden_case_from_annotation(
    *,
    actor: User,
    golden_set: GoldenSet,
    annotation: Any,
    criterion: str | None = None,
    variables: dict[str, Any] | None = None,
    case: dict[str, Any] | None = None,
    message: str = "",
) -> GoldenSetVersion:
    """A new version with one more case: the annotated event's variables (the same rule as for a log event)
    and the annotator's corrected answer as the reference."""
    from apps.feedback.services import FEEDBACK_MANAGERS

    if annotation.queue.team_id != golden_set.team_id or not user_has_role(
        actor, annotation.queue.team_id, FEEDBACK_MANAGERS
    ):
        raise NotFound("No such annotation in this golden set's team.", code="annotation_not_found")
    _, text = corrected_text(annotation, criterion)
    event = annotation.item.event
    fields = dict(case or {})
    fields["variables"] = case_variables_from_event(
        event=event, golden_set=golden_set, variables=variables or fields.get("variables")
    )
    fields.setdefault("reference", text)
    fields.setdefault("name", f"corrected {event.request_id}"[:200])
    fields |= {"source": CaseSource.ANNOTATION.value, "source_ref": f"annotation:{annotation.pk}"}
    return golden_case_add(
        actor=actor,
        golden_set=golden_set,
        case=fields,
        message=message or f"Case from the corrected answer of annotation {annotation.pk}",
    )


def corrected_annotations(*, user: User, queue: Any) -> list[tuple[Any, str, str]]:
    """(annotation, criterion, text) for each annotation of the queue with a corrected answer, for a user
    who writes golden sets in the queue's team; empty otherwise."""
    from apps.feedback.models import Annotation, CriterionKind

    if not user_has_role(user, queue.team_id, CATALOG_AUTHORS):
        return []
    texts = [c["name"] for c in queue.schema.criteria if c["kind"] == CriterionKind.TEXT]
    if not texts:
        return []
    rows = []
    for annotation in (
        Annotation.objects.filter(queue=queue)
        .select_related("item__event", "annotator")
        .order_by("item__position", "pk")
    ):
        for name in texts:
            value = annotation.values.get(name)
            if isinstance(value, str) and value.strip():
                rows.append((annotation, name, value))
    return rows


def annotation_for_golden_case(*, user: User, annotation_id: int) -> Any:
    """An annotation whose corrected answer the user may turn into a case: of a queue of a team where
    they manage feedback and edit golden sets; None otherwise."""
    from apps.feedback.models import Annotation
    from apps.feedback.services import FEEDBACK_MANAGERS

    teams = set(user_team_ids(user, FEEDBACK_MANAGERS)) & set(user_team_ids(user, CATALOG_AUTHORS))
    return (
        Annotation.objects.filter(pk=annotation_id, queue__team_id__in=teams)
        .select_related("queue__schema", "queue__team", "item__event", "annotator")
        .first()
    )
