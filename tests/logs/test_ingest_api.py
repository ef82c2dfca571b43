import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.logs.models import EventState, LogEvent
from tests.factories import make_token
from tests.logs.conftest import event

URL = "/api/v1/logs/batch"


def post(client, events, **extra):
    return client.post(URL, data=json.dumps({"events": events}), content_type="application/json", **extra)


@pytest.fixture
def writer(world, api_as):
    return api_as(token=make_token(world.eng, world.support, "logs:write"))


def test_batch_is_accepted_staged_and_encrypted(writer, world, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(writer, [event("a"), event("b")])
    assert response.status_code == 202, response.content
    assert response.json() == {"accepted": 2, "duplicate": 0, "rejected": 0, "errors": []}
    rows = LogEvent.objects.order_by("request_id")
    assert [r.request_id for r in rows] == ["a", "b"]
    assert {r.state for r in rows} == {EventState.STAGED}
    assert all(r.team == world.support for r in rows)
    staged = bytes(rows[0].staged_payload)
    assert b"ana.garcia" not in staged and b"order is late" not in staged  # encrypted, not readable
    assert rows[0].input is None and rows[0].output == ""
    assert enqueued == [("workers.logs.scan_events", ([r.pk for r in rows],))]


def test_retried_batch_counts_duplicates_and_stores_once(writer):
    batch = [event("a"), event("b"), event("a")]
    first = post(writer, batch).json()
    assert (first["accepted"], first["duplicate"]) == (2, 1)
    again = post(writer, batch).json()
    assert (again["accepted"], again["duplicate"]) == (0, 3)
    assert LogEvent.objects.count() == 2


def test_the_same_request_id_in_another_team_is_another_event(writer, world, api_as):
    assert post(writer, [event("shared"), event("a")]).json()["accepted"] == 2
    finance = api_as(token=make_token(world.fin_eng, world.finance, "logs:write"))
    answer = post(finance, [event("shared"), event("b")]).json()
    assert (answer["accepted"], answer["duplicate"]) == (2, 0)
    again = post(finance, [event("shared")]).json()
    assert (again["accepted"], again["duplicate"]) == (0, 1)
    assert sorted(LogEvent.objects.values_list("team__slug", "request_id")) == [
        ("finance", "b"),
        ("finance", "shared"),
        ("support", "a"),
        ("support", "shared"),
    ]


def _unique_request_index() -> str:
    """The name the database gives the (request_id, team) unique index."""
    if connection.vendor != "sqlite":
        return "log_event_unique_request"
    with connection.cursor() as cursor:
        for _, name, unique, origin, _ in cursor.execute("PRAGMA index_list(logs_logevent)").fetchall():
            columns = [row[2] for row in cursor.execute(f'PRAGMA index_info("{name}")').fetchall()]
            if unique and origin == "u" and columns == ["request_id", "team_id"]:
                return name
    raise AssertionError("no unique index on (request_id, team_id)")


def test_a_batch_is_looked_up_by_its_request_ids_never_by_walking_the_teams_log(writer):
    """Ingestion looks up the batch's request ids (duplicates, then the new rows' ids). Each lookup must
    go through the unique index: on a team index it reads every event the team ever logged, per batch
    (the SDK benchmark's shipping rate halved by 90,000 events)."""
    post(writer, [event(f"old-{i}") for i in range(50)])
    with CaptureQueriesContext(connection) as queries:
        assert post(writer, [event("a"), event("b"), event("old-1")]).json()["accepted"] == 2
    lookups = [
        q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "logs_logevent"' in q["sql"]
    ]
    assert len(lookups) == 2, [q["sql"] for q in queries]
    index = _unique_request_index()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small would be read whole
        for sql in lookups:
            cursor.execute(("EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN ") + sql)
            plan = " ".join(str(cell) for row in cursor.fetchall() for cell in row)
            assert index in plan, plan


def test_one_bad_event_never_blocks_the_others(writer):
    bad = [
        event("ok1"),
        event("unknown", surprise=True),
        {k: v for k, v in event("nomodel").items() if k != "model"},
        event("naive", started_at="2026-11-21T10:00:00"),
        event("backwards", ended_at="2026-11-20T10:00:00Z"),
        event("badstatus", status="weird"),
        event("", model="m"),
        "not an object",
        event("ok2", input="a plain string prompt"),
    ]
    response = post(writer, bad)
    body = response.json()
    assert response.status_code == 202
    assert (body["accepted"], body["rejected"]) == (2, 7)
    messages = {e["index"]: e["message"] for e in body["errors"]}
    assert "unknown field `surprise`" in messages[1]
    assert "missing required field `model`" in messages[2]
    assert "time zone" in messages[3]
    assert "before started_at" in messages[4]
    assert body["errors"][0]["request_id"] == "unknown"
    assert set(LogEvent.objects.values_list("request_id", flat=True)) == {"ok1", "ok2"}


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"{not json", 400, "malformed_request"),
        (b'{"events": {}}', 400, "malformed_request"),
        (b'{"events": [], "extra": 1}', 400, "malformed_request"),
    ],
)
def test_malformed_bodies(writer, body, status, code):
    response = writer.post(URL, data=body, content_type="application/json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == code
    assert not LogEvent.objects.exists()


def test_too_many_events_is_413(writer):
    response = post(writer, [event(f"r{i}") for i in range(501)])
    assert response.status_code == 413
    assert "at most 500" in response.json()["error"]["message"]
    assert not LogEvent.objects.exists()


def test_body_over_5_mb_is_413_before_reading(writer):
    big = [event(f"r{i}", output="x" * 900_000) for i in range(6)]
    response = post(writer, big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not LogEvent.objects.exists()


def test_one_text_over_1_mb_is_413(writer):
    response = post(writer, [event("small"), event("huge", output="é" * 600_000)])
    assert response.status_code == 413
    assert "over 1 MB" in response.json()["error"]["message"]
    assert not LogEvent.objects.exists()


@pytest.mark.parametrize(
    "user, team, scopes, status",
    [
        ("eng", "support", ["logs:read"], 403),  # wrong scope
        ("owner", "support", ["logs:write"], 403),  # product owners do not send logs
        ("ann1", "support", ["all"], 403),
        ("gov", "support", ["all"], 403),
        ("admin", "support", ["logs:write"], 202),
        ("eng", "support", ["all"], 202),
    ],
)
def test_who_may_send_logs(world, api_as, user, team, scopes, status):
    client = api_as(token=make_token(world.users[user], getattr(world, team), *scopes))
    events_before = AuditEvent.objects.count()
    response = post(client, [event("x")])
    assert response.status_code == status
    assert LogEvent.objects.count() == (1 if status == 202 else 0)
    assert AuditEvent.objects.count() == events_before


def test_sessions_name_the_team_and_cannot_write_to_others(world, api_as):
    client = api_as(world.eng2)  # engineer in support and finance
    assert post(client, [event("x")]).status_code == 404  # which team?
    assert post(client, [event("x")], QUERY_STRING="team=finance").status_code == 202
    assert LogEvent.objects.get().team == world.finance
    other = api_as(world.eng)
    assert post(other, [event("y")], QUERY_STRING="team=finance").status_code == 404
    assert post(api_as(), [event("z")]).status_code == 401


def test_nul_characters_become_replacement_characters_so_postgresql_can_store_them(writer, scanner):
    from apps.logs.services import log_events_scan

    nul = event(
        "nul",
        input=[{"role": "user", "content": "before\u0000after"}],
        output="out\u0000put",
        metadata={"k\u0000": ["v\u0000"]},
    )
    response = post(writer, [nul, event("plain", output="a \\u0000 written out is kept")])
    assert response.json()["accepted"] == 2, response.content
    rows = {r.request_id: r for r in LogEvent.objects.all()}
    assert log_events_scan(event_ids=[r.pk for r in rows.values()])["stored"] == 2
    stored = LogEvent.objects.get(request_id="nul")
    assert stored.input[0]["content"] == "before\ufffdafter"
    assert stored.output == "out\ufffdput"
    assert stored.metadata == {"k\ufffd": ["v\ufffd"]}
    assert LogEvent.objects.get(request_id="plain").output == "a \\u0000 written out is kept"


def test_deeply_nested_metadata_is_rejected_alone_never_a_500(writer):
    deep: dict = {}
    node = deep
    for _ in range(40):
        node["a"] = {}
        node = node["a"]
    response = post(
        writer,
        [event("ok"), event("deep", metadata=deep), event("nul-deep", metadata={"x": deep, "n": "\u0000"})],
    )
    assert response.status_code == 202, response.content
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (1, 2)
    assert all("metadata nests more than 32 levels deep" in e["message"] for e in result["errors"])
    assert list(LogEvent.objects.values_list("request_id", flat=True)) == ["ok"]
    # nested beyond what the JSON decoder walks: the body is malformed, 400 (it was a 500)
    very_deep = b'{"events": [{"request_id": "x", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]}"
    response = writer.post(URL, data=very_deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "Malformed JSON: nested too deeply."


def test_a_prompt_version_beyond_the_database_integer_is_rejected(writer):
    response = post(writer, [event("big", prompt="greeting", prompt_version=2**31)])
    assert response.json()["rejected"] == 1
    assert "<= 2147483647" in response.json()["errors"][0]["message"]
