"""Golden sets: copy-on-write versions, the content hash, import (errors naming the line and the field, all
or nothing) and export (round trip), cases from logged events and corrected answers, permissions, audit."""

import json

import pytest

from apps.audit.models import AuditEvent
from apps.common.exceptions import Conflict, NotFound, PermissionDenied, Unprocessable
from apps.evaluation.golden_sets import (
    case_clean,
    cases_content_hash,
    cases_export,
    cases_parse,
    corrected_annotations,
    golden_case_add,
    golden_case_from_annotation,
    golden_case_from_log_event,
    golden_case_remove,
    golden_case_update,
    golden_cases,
    golden_set_create,
    golden_set_get,
    golden_set_import,
    golden_set_latest_version,
    golden_set_update,
    golden_set_version_create,
    golden_sets_applicable,
    golden_sets_for,
    golden_sets_with_latest,
)
from apps.evaluation.models import GoldenCase, GoldenSet, GoldenSetVersion
from apps.feedback.services import (
    annotation_next,
    annotation_queue_create,
    annotation_submit,
    rating_schema_create,
)
from tests.evaluation.golden_helpers import CASES, make_golden_set
from tests.factories import make_prompt, make_version
from tests.feedback.conftest import RUBRIC, event_spec, store_events

pytestmark = pytest.mark.django_db


def _names(version: GoldenSetVersion) -> list[str]:
    return [c.name for c in golden_cases(version=version)]


def _snapshot() -> tuple:
    return (
        list(GoldenSet.objects.values_list("pk", "name", "description")),
        list(GoldenSetVersion.objects.values_list("pk", "number", "content_hash")),
        GoldenCase.objects.count(),
        AuditEvent.objects.count(),
    )


# Versions


def test_creating_a_set_makes_version_1_with_its_cases_and_audits_both(world):
    golden_set = make_golden_set(world)
    version = golden_set_latest_version(golden_set=golden_set)
    assert version.number == 1 and version.case_count == 4
    assert _names(version) == ["refund", "order json", "greeting, ñandú", "exact"]
    cases = golden_cases(version=version)
    assert [c.position for c in cases] == [1, 2, 3, 4]
    assert cases[1].expect_json is True  # a schema implies a JSON answer
    assert cases[0].source == "manual"
    actions = list(
        AuditEvent.objects.filter(target_id=str(golden_set.pk), action__startswith="evaluation.").values_list(
            "action", flat=True
        )
    )
    assert sorted(actions) == ["evaluation.golden_set_created", "evaluation.golden_set_version_created"]


def test_every_edit_is_a_new_version_holding_all_cases_and_old_versions_stay(world):
    golden_set = make_golden_set(world)
    v2 = golden_case_add(
        actor=world.eng, golden_set=golden_set, case={"name": "new", "must_contain": ["hi"]}, base_version=1
    )
    v3 = golden_case_update(
        actor=world.eng, golden_set=golden_set, position=1, case={"name": "refund v2", "reference": "Yes."}
    )
    v4 = golden_case_remove(actor=world.eng, golden_set=golden_set, position=2)
    assert [v.number for v in (v2, v3, v4)] == [2, 3, 4]
    assert _names(v2) == ["refund", "order json", "greeting, ñandú", "exact", "new"]
    assert _names(v3) == ["refund v2", "order json", "greeting, ñandú", "exact", "new"]
    assert _names(v4) == ["refund v2", "greeting, ñandú", "exact", "new"]
    assert v4.case_count == 4 and v4.message == "Removed case 2"
    v1 = golden_set.versions.get(number=1)
    assert _names(v1) == ["refund", "order json", "greeting, ñandú", "exact"]  # untouched
    assert golden_set_latest_version(golden_set=golden_set) == v4
    assert AuditEvent.objects.filter(action="evaluation.golden_set_version_created").count() == 4


def test_an_edit_based_on_an_old_version_is_refused(world):
    golden_set = make_golden_set(world)
    golden_case_remove(actor=world.eng, golden_set=golden_set, position=4, base_version=1)
    before = _snapshot()
    with pytest.raises(Conflict, match="changed since you opened it") as exc:
        golden_case_update(
            actor=world.eng2, golden_set=golden_set, position=1, case={"reference": "x"}, base_version=1
        )
    assert exc.value.code == "golden_set_changed" and exc.value.details == {"latest": 2}
    assert _snapshot() == before


def test_a_version_identical_to_the_latest_is_refused(world):
    golden_set = make_golden_set(world)
    before = _snapshot()
    with pytest.raises(Conflict) as exc:
        golden_set_version_create(actor=world.eng, golden_set=golden_set, cases=CASES)
    assert exc.value.code == "golden_set_unchanged"
    assert _snapshot() == before


def test_a_missing_case_position_is_not_found(world):
    golden_set = make_golden_set(world)
    with pytest.raises(NotFound):
        golden_case_remove(actor=world.eng, golden_set=golden_set, position=9)


def test_the_content_hash_is_stable_and_depends_only_on_the_cases(world):
    golden_set = make_golden_set(world)
    other = make_golden_set(world, name="copy")
    v1 = golden_set_latest_version(golden_set=golden_set)
    assert golden_set_latest_version(golden_set=other).content_hash == v1.content_hash
    reordered = [{key: case[key] for key in reversed(list(case))} for case in CASES]
    assert cases_content_hash([case_clean(c) for c in reordered]) == v1.content_hash
    # provenance (where a case came from) is not content
    assert cases_content_hash([case_clean(c | {"source": "import"}) for c in CASES]) == v1.content_hash
    changed = [*CASES[:3], CASES[3] | {"reference": "OK."}]
    assert cases_content_hash([case_clean(c) for c in changed]) != v1.content_hash
    swapped = [CASES[1], CASES[0], *CASES[2:]]
    assert cases_content_hash([case_clean(c) for c in swapped]) != v1.content_hash
    assert len(v1.content_hash) == 64


@pytest.mark.parametrize(
    "case, field, message",
    [
        ({"name": "nothing"}, None, "expects nothing"),
        ({"regex": "(unclosed"}, "regex", "invalid regular expression"),
        ({"json_schema": {"type": "nonsense"}}, "json_schema", "invalid JSON schema"),
        ({"json_schema": "object"}, "json_schema", "must be a JSON object"),
        ({"json_schema": {"$ref": "https://example.com/s.json"}}, "json_schema", "only references inside"),
        ({"json_schema": {"$ref": "#/$defs/missing"}}, "json_schema", "points at nothing"),
        ({"exact": True}, "exact", "needs a reference"),
        ({"must_contain": "refund"}, "must_contain", "a list"),
        ({"must_contain": [""]}, "must_contain", "non-empty"),
        ({"max_latency_ms": 0, "reference": "x"}, "max_latency_ms", "at least 1"),
        ({"max_tokens": "many", "reference": "x"}, "max_tokens", "whole number"),
        ({"variables": ["a"], "reference": "x"}, "variables", "an object"),
        ({"reference": "x", "colour": "red"}, "colour", "unknown field"),
        ({"reference": "x", "source": "magic"}, "source", "one of"),
        ({"reference": "x" * 20_001}, "reference", "at most 20000"),
    ],
)
def test_a_bad_case_is_refused_naming_the_case_and_field(world, case, field, message):
    golden_set = make_golden_set(world)
    before = _snapshot()
    with pytest.raises(Unprocessable, match=message) as exc:
        golden_set_version_create(actor=world.eng, golden_set=golden_set, cases=[CASES[0], case])
    assert exc.value.details["field"] == field and exc.value.details["case"] == 2
    assert exc.value.message.startswith("case 2" + (f", field {field}" if field else ""))
    assert _snapshot() == before


# Import and export


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_export_then_import_is_identical(world, fmt):
    golden_set = make_golden_set(world)
    v1 = golden_set_latest_version(golden_set=golden_set)
    exported = cases_export(golden_cases(version=v1), fmt)
    other = golden_set_create(actor=world.eng, team=world.support, name="imported")
    v2 = golden_set_import(actor=world.eng, golden_set=other, content=exported.encode(), fmt=fmt)
    assert v2.content_hash == v1.content_hash
    assert cases_export(golden_cases(version=v2), fmt) == exported  # byte for byte, provenance included
    assert [c.source for c in golden_cases(version=v2)] == ["manual"] * 4


def test_the_export_formats_look_as_documented(world):
    version = golden_set_latest_version(golden_set=make_golden_set(world))
    jsonl = cases_export(golden_cases(version=version), "jsonl").splitlines()
    assert len(jsonl) == 4
    first = json.loads(jsonl[0])
    assert first["must_contain"] == ["30 days"] and first["variables"]["question"] == "Can I get a refund?"
    csv_text = cases_export(golden_cases(version=version), "csv")
    assert csv_text.splitlines()[0] == (
        "name,variables,reference,exact,must_contain,must_not_contain,regex,expect_json,json_schema,"
        "max_latency_ms,max_tokens,rubric,case_sensitive,source,source_ref"
    )
    assert '"[""30 days""]"' in csv_text  # a list is JSON text in its cell


def test_a_minimal_csv_with_some_columns_imports_with_defaults(world):
    golden_set = golden_set_create(actor=world.eng, team=world.support, name="csv")
    content = 'name,variables,must_contain,max_tokens\nfirst,"{""question"": ""hi""}","[""hello""]",50\n'
    version = golden_set_import(actor=world.eng, golden_set=golden_set, content=content, fmt="csv")
    case = golden_cases(version=version)[0]
    assert (case.name, case.variables, case.must_contain, case.max_tokens, case.source) == (
        "first",
        {"question": "hi"},
        ["hello"],
        50,
        "import",
    )


@pytest.mark.parametrize(
    "fmt, content, line, field, message",
    [
        (
            "jsonl",
            '{"reference": "a"}\n\n{"reference": "b", "regex": "("}\n',
            3,
            "regex",
            "regular expression",
        ),
        ("jsonl", '{"reference": "a"}\n{"reference": "b"\n', 2, None, "not valid JSON"),
        ("jsonl", '{"reference": "a"}\n["b"]\n', 2, None, "a case is an object"),
        ("jsonl", '{"reference": "a", "must_contain": "x"}\n', 1, "must_contain", "a list"),
        ("csv", "name,reference,exact\na,x,true\nb,,true\n", 3, "exact", "needs a reference"),
        ("csv", 'name,reference\na,"multi\nline"\nb,""\n', 4, None, "expects nothing"),
        ("csv", "name,reference,max_tokens\na,x,lots\n", 2, "max_tokens", "a whole number"),
        ("csv", "name,reference,exact\na,x,maybe\n", 2, "exact", "true or false"),
        ("csv", 'name,variables,reference\na,"{bad",x\n', 2, "variables", "not valid JSON"),
        ("csv", "name,reference,colour\na,x,red\n", 1, "colour", "unknown column"),
        ("csv", "name,reference\na,x,extra\n", 2, None, "3 cells where the header has 2"),
        (
            "csv",
            'name,json_schema\na,"{""type"": ""objekt""}"\n',
            2,
            "json_schema",
            "invalid JSON schema",
        ),
    ],
)
def test_import_errors_name_the_line_and_field_and_write_nothing(world, fmt, content, line, field, message):
    golden_set = make_golden_set(world)
    before = _snapshot()
    with pytest.raises(Unprocessable, match=message) as exc:
        golden_set_import(actor=world.eng, golden_set=golden_set, content=content.encode(), fmt=fmt)
    assert exc.value.details["line"] == line
    assert exc.value.details["field"] == field
    assert exc.value.message.startswith(f"line {line}" + (f", field {field}" if field else ""))
    assert _snapshot() == before


def test_import_refuses_empty_files_non_utf8_and_unknown_formats(world):
    golden_set = make_golden_set(world)
    for content, fmt, code in [
        (b"", "jsonl", "invalid_import"),
        (b"name,reference\n", "csv", "invalid_import"),
        ('{"reference": "café"}\n'.encode("latin-1"), "jsonl", "invalid_import"),
        (b'{"reference": "a"}', "xml", "invalid_format"),
    ]:
        with pytest.raises(Unprocessable) as exc:
            golden_set_import(actor=world.eng, golden_set=golden_set, content=content, fmt=fmt)
        assert exc.value.code == code


def test_import_appends_or_replaces(world):
    golden_set = make_golden_set(world)
    extra = '{"name": "extra", "must_not_contain": ["sorry"]}\n'
    appended = golden_set_import(
        actor=world.eng, golden_set=golden_set, content=extra, fmt="jsonl", append=True
    )
    assert _names(appended) == ["refund", "order json", "greeting, ñandú", "exact", "extra"]
    replaced = golden_set_import(
        actor=world.eng, golden_set=golden_set, content=extra.replace("extra", "only"), fmt="jsonl"
    )
    assert _names(replaced) == ["only"] and replaced.message == "Imported 1 cases (JSONL)"


# Cases from logged events and corrected answers


def test_a_case_from_a_logged_event_uses_its_logged_variables_and_redacted_answer(world):
    golden_set = make_golden_set(world)
    [event] = store_events(
        world.eng,
        world.support,
        [
            event_spec(
                "r-1", metadata={"variables": {"company": "Acme", "question": "Mail ana.garcia@example.com"}}
            )
        ],
    )
    version = golden_case_from_log_event(actor=world.eng, golden_set=golden_set, event=event)
    case = golden_cases(version=version)[-1]
    assert case.source == "log" and case.source_ref == "r-1"
    assert case.reference == event.output and "ana.garcia@example.com" not in case.reference
    assert "ana.garcia@example.com" not in json.dumps(case.variables)  # metadata is redacted too
    assert set(case.variables) == {"company", "question"}


def test_a_case_from_an_event_maps_a_single_variable_prompt_from_the_last_user_message(world):
    prompt = make_prompt(world.support, world.eng, name="support-reply")
    make_version(prompt, world.eng, messages=[{"role": "user", "template": "{{ question }}"}])
    shared = make_golden_set(world, shared=True, name="shared")
    [event] = store_events(world.eng, world.support, [event_spec("r-2")])
    version = golden_case_from_log_event(actor=world.eng, golden_set=shared, event=event)
    case = golden_cases(version=version)[-1]
    assert case.variables == {"question": event.input[-1]["content"]}
    assert case.variables["question"].startswith("Question r-2: write to [")  # redacted


def test_a_case_from_an_event_needs_variables_when_they_cannot_be_found(world):
    golden_set = make_golden_set(world)  # greeting has two variables and the event logged none
    [event] = store_events(world.eng, world.support, [event_spec("r-3")])
    before = _snapshot()
    with pytest.raises(Unprocessable) as exc:
        golden_case_from_log_event(actor=world.eng, golden_set=golden_set, event=event)
    assert exc.value.code == "variables_required"
    assert exc.value.details["variables"] == ["company", "question"]
    assert _snapshot() == before
    version = golden_case_from_log_event(
        actor=world.eng,
        golden_set=golden_set,
        event=event,
        variables={"company": "Acme", "question": "Where is my order?"},
        case={"must_contain": ["order"]},
    )
    case = golden_cases(version=version)[-1]
    assert case.variables["question"] == "Where is my order?"
    assert case.must_contain == ["order"] and case.reference == event.output


def test_an_event_of_another_team_cannot_become_a_case(world):
    golden_set = make_golden_set(world)
    [event] = store_events(world.fin_eng, world.finance, [event_spec("f-1")])
    with pytest.raises(NotFound):
        golden_case_from_log_event(actor=world.eng, golden_set=golden_set, event=event, variables={"q": "x"})


def _annotated(world, corrected: str):
    events = store_events(
        world.eng, world.support, [event_spec("a-1", metadata={"variables": {"question": "Q"}})]
    )
    schema = rating_schema_create(actor=world.gov, team=world.support, name="rubric", criteria=RUBRIC)
    queue = annotation_queue_create(
        actor=world.eng, team=world.support, name="q", schema=schema, size=1, assignees=[world.ann1]
    )
    slot = annotation_next(actor=world.ann1, queue=queue)
    values = {"ok": False, "helpfulness": 2, "topic": "delivery", "corrected": corrected}
    return queue, events[0], annotation_submit(actor=world.ann1, slot_id=slot.pk, values=values)


def test_a_corrected_answer_becomes_the_reference_of_a_case(world):
    golden_set = make_golden_set(world)
    queue, _event, annotation = _annotated(world, "We will refund you within 30 days.")
    [(found, criterion, text)] = corrected_annotations(user=world.eng, queue=queue)
    assert (found, criterion, text) == (annotation, "corrected", "We will refund you within 30 days.")
    assert corrected_annotations(user=world.gov, queue=queue) == []  # governance does not edit golden sets
    version = golden_case_from_annotation(actor=world.eng, golden_set=golden_set, annotation=annotation)
    case = golden_cases(version=version)[-1]
    assert case.reference == "We will refund you within 30 days."
    assert case.variables == {"question": "Q"}
    assert (case.source, case.source_ref) == ("annotation", f"annotation:{annotation.pk}")


def test_an_annotation_without_a_corrected_answer_is_refused(world):
    golden_set = make_golden_set(world)
    _, _, annotation = _annotated(world, "")
    with pytest.raises(Unprocessable) as exc:
        golden_case_from_annotation(actor=world.eng, golden_set=golden_set, annotation=annotation)
    assert exc.value.code == "no_corrected_answer"


# Selectors and permissions


def test_readers_see_their_teams_sets_and_applicable_sets_are_own_plus_shared(world):
    own = make_golden_set(world)
    shared = make_golden_set(world, name="shared", shared=True)
    other_prompt = make_prompt(world.support, world.eng, name="other")
    golden_set_create(actor=world.eng, team=world.support, name="other-set", prompt=other_prompt)
    golden_set_create(actor=world.fin_eng, team=world.finance, name="ledger-set")
    for user in (world.admin, world.gov, world.eng, world.owner):
        assert [s.name for s in golden_sets_for(user=user, team_id=world.support.pk)] == [
            "other-set",
            "shared",
            "support-basics",
        ]
    assert list(golden_sets_for(user=world.ann1)) == []
    assert [s.name for s in golden_sets_for(user=world.eng2)] == [
        "ledger-set",
        "other-set",
        "shared",
        "support-basics",
    ]
    assert list(golden_sets_applicable(prompt=own.prompt)) == [shared, own]
    with pytest.raises(NotFound):
        golden_set_get(user=world.fin_eng, golden_set_id=own.pk)
    assert golden_set_get(user=world.owner, golden_set_id=own.pk) == own


def test_only_engineers_and_admins_write_golden_sets(world):
    golden_set = make_golden_set(world)
    before = _snapshot()
    for user in (world.gov, world.owner, world.ann1, world.fin_eng):
        with pytest.raises(PermissionDenied):
            golden_set_create(actor=user, team=world.support, name="x", cases=CASES)
        with pytest.raises(PermissionDenied):
            golden_case_add(actor=user, golden_set=golden_set, case={"reference": "x"})
        with pytest.raises(PermissionDenied):
            golden_set_import(actor=user, golden_set=golden_set, content='{"reference": "x"}', fmt="jsonl")
        with pytest.raises(PermissionDenied):
            golden_set_update(actor=user, golden_set=golden_set, description="x")
    assert _snapshot() == before
    golden_case_add(actor=world.admin, golden_set=golden_set, case={"reference": "by admin"})


def test_names_are_unique_per_team_and_validated(world):
    make_golden_set(world)
    with pytest.raises(Conflict):
        golden_set_create(actor=world.eng, team=world.support, name="support-basics")
    with pytest.raises(Unprocessable, match="lowercase"):
        golden_set_create(actor=world.eng, team=world.support, name="Bad Name")
    finance_prompt = make_prompt(world.finance, world.fin_eng, name="ledger")
    with pytest.raises(Unprocessable, match="same team"):
        golden_set_create(actor=world.eng2, team=world.support, name="x", prompt=finance_prompt)


def test_the_description_is_updated_and_audited(world):
    golden_set = make_golden_set(world)
    golden_set_update(actor=world.eng, golden_set=golden_set, description="New words")
    golden_set.refresh_from_db()
    assert golden_set.description == "New words"
    event = AuditEvent.objects.get(action="evaluation.golden_set_updated")
    assert event.changes["description"]["to"] == "New words"


def test_parse_is_usable_alone(world):
    assert cases_parse('{"rubric": "kind"}\n', "jsonl")[0]["rubric"] == "kind"


def test_a_page_of_sets_gets_its_latest_versions_in_one_query(world, django_assert_num_queries):
    first = make_golden_set(world)
    second = make_golden_set(world, name="second", shared=True)
    golden_case_remove(actor=world.eng, golden_set=first, position=1)
    golden_case_remove(actor=world.eng, golden_set=first, position=1)
    sets = list(golden_sets_for(user=world.eng))
    with django_assert_num_queries(1):
        with_latest = golden_sets_with_latest(sets)
    assert {s.name: (s.latest.number, s.latest.case_count) for s in with_latest} == {
        "support-basics": (3, 2),
        "second": (1, 4),
    }
    assert second in with_latest
