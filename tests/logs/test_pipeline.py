import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.cloud.warehouse import WarehouseUnavailable
from apps.logs.models import EventState, ExportState, LogEvent, LogFinding, TeamLogPolicy
from apps.logs.services import (
    log_events_dispatch_pending,
    log_events_export,
    log_events_scan,
    log_retention_apply,
    quarantine_retry_now,
    team_log_policy_set,
)
from tests.factories import make_token
from tests.logs.conftest import days_ago, event


@pytest.fixture
def ingest(world, api_as):
    client = api_as(token=make_token(world.eng, world.support, "logs:write"))

    def send(*events):
        response = client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
        )
        assert response.status_code == 202, response.content
        return list(LogEvent.objects.filter(request_id__in=[e["request_id"] for e in events]).order_by("id"))

    return send


def test_scan_stores_redacted_text_and_findings_and_deletes_the_staged_text(ingest, scanner):
    (row,) = ingest(event("a"))
    assert log_events_scan(event_ids=[row.pk]) == {"stored": 1, "quarantined": 0}
    row.refresh_from_db()
    assert row.state == EventState.STORED
    assert row.staged_payload is None
    assert row.input == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "I am [EMAIL_ADDRESS], my order is late"},
    ]
    assert row.output == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
    assert row.metadata == {"channel": "web", "contact": "[EMAIL_ADDRESS]"}
    assert row.has_pii and row.pii_types == ["EMAIL_ADDRESS"]
    finding = LogFinding.objects.get(event=row)
    assert (finding.info_type, finding.count, finding.likelihood) == ("EMAIL_ADDRESS", 3, "VERY_LIKELY")
    assert "ana.garcia" not in row.search_text and "order is late" in row.search_text


def test_scanning_twice_stores_once(ingest, scanner):
    rows = ingest(event("a"), event("b"))
    ids = [r.pk for r in rows]
    assert log_events_scan(event_ids=ids)["stored"] == 2
    assert log_events_scan(event_ids=ids) == {"stored": 0, "quarantined": 0}
    assert LogFinding.objects.count() == 2


@pytest.mark.parametrize(
    "mode, expected",
    [
        ("mask", "I am " + "*" * len("ana.garcia@example.com") + ", my order is late"),
        ("replace", "I am [EMAIL_ADDRESS], my order is late"),
    ],
)
def test_team_policy_chooses_the_redaction(world, ingest, scanner, mode, expected):
    team_log_policy_set(actor=world.gov, team=world.support, redaction_mode=mode, retention_days=30)
    (row,) = ingest(event("a"))
    log_events_scan(event_ids=[row.pk])
    row.refresh_from_db()
    assert row.input[1]["content"] == expected
    assert row.redaction_mode == mode


def test_keyed_tokens_group_the_same_value(world, ingest, scanner):
    team_log_policy_set(actor=world.gov, team=world.support, redaction_mode="token", retention_days=30)
    rows = ingest(event("a"), event("b", input=[{"role": "user", "content": "write to luis@example.org"}]))
    log_events_scan(event_ids=[r.pk for r in rows])
    a, b = (LogEvent.objects.get(pk=r.pk) for r in rows)
    token_a = a.output.split("write to ")[1].split(" today")[0]
    assert (
        token_a.startswith("[EMAIL_ADDRESS:") and token_a in a.input[1]["content"]
    )  # same value, same token
    assert token_a not in b.input[0]["content"]  # another value, another token


def test_scanner_failure_quarantines_then_a_retry_stores(ingest, scanner):
    rows = ingest(event("a"), event("b"))
    ids = [r.pk for r in rows]
    scanner.failures_left = 1
    assert log_events_scan(event_ids=ids) == {"stored": 0, "quarantined": 2}
    quarantined = LogEvent.objects.get(pk=ids[0])
    assert quarantined.state == EventState.QUARANTINED
    assert quarantined.staged_payload is not None  # kept (encrypted), never dropped
    assert quarantined.input is None and quarantined.output == ""  # never stored raw
    assert quarantined.attempts == 1 and quarantined.next_attempt_at > timezone.now()
    assert "unreachable" in quarantined.last_error
    assert log_events_dispatch_pending() == 0  # not due yet
    later = timezone.now() + timedelta(minutes=5)
    assert log_events_dispatch_pending(now=later) == 2
    assert log_events_scan(event_ids=ids) == {"stored": 2, "quarantined": 0}
    assert LogEvent.objects.filter(state=EventState.STORED).count() == 2


def test_backoff_grows(ingest, scanner):
    (row,) = ingest(event("a"))
    scanner.failures_left = 3
    waits = []
    for _ in range(3):
        log_events_scan(event_ids=[row.pk])
        row.refresh_from_db()
        waits.append((row.next_attempt_at - timezone.now()).total_seconds())
    assert waits[0] < waits[1] < waits[2]
    assert row.attempts == 3


def test_lost_staged_events_are_dispatched_again(ingest, scanner, enqueued):
    (row,) = ingest(event("a"))
    assert log_events_dispatch_pending() == 0  # within the grace period: its task is on the way
    LogEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    assert log_events_dispatch_pending() == 1
    assert enqueued[-1] == ("workers.logs.scan_events", ([row.pk],))


def test_governance_retries_the_quarantine_now(
    world, ingest, scanner, enqueued, django_capture_on_commit_callbacks
):
    rows = ingest(event("a"))
    scanner.failures_left = 1
    log_events_scan(event_ids=[rows[0].pk])
    from apps.common.exceptions import NotFound

    with pytest.raises(NotFound):
        quarantine_retry_now(actor=world.eng, team=world.support)
    with django_capture_on_commit_callbacks(execute=True):
        assert quarantine_retry_now(actor=world.gov, team=world.support) == 1
    assert enqueued[-1] == ("workers.logs.scan_events", ([rows[0].pk],))
    assert AuditEvent.objects.filter(action="logs.quarantine_retried").get().changes == {"events": 1}


class RecordingWarehouse:
    name = "recording"

    def __init__(self):
        self.rows = {}
        self.fail = False

    def export(self, rows):
        if self.fail:
            raise WarehouseUnavailable("warehouse down (test)")
        for row in rows:
            self.rows[row["request_id"]] = row
        return len(rows)


def test_export_sends_stored_events_once_and_never_staged_ones(ingest, scanner, monkeypatch):
    warehouse = RecordingWarehouse()
    monkeypatch.setattr("apps.logs.services.get_warehouse", lambda: warehouse)
    rows = ingest(event("a"), event("b"), event("c"))
    log_events_scan(event_ids=[rows[0].pk, rows[1].pk])  # c stays staged
    warehouse.fail = True
    with pytest.raises(WarehouseUnavailable):
        log_events_export()
    assert not LogEvent.objects.filter(exported_at__isnull=False).exists()
    assert "down" in ExportState.objects.get(warehouse="recording").last_error
    warehouse.fail = False
    assert log_events_export() == 2
    assert log_events_export() == 0
    assert set(warehouse.rows) == {"a", "b"}
    assert warehouse.rows["a"]["output"] == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
    assert ExportState.objects.get(warehouse="recording").exported_total == 2


def test_retention_deletes_old_stored_events_and_audits(world, ingest, scanner):
    TeamLogPolicy.objects.create(team=world.support, retention_days=30)
    rows = ingest(
        event("old", started_at=days_ago(40)),
        event("new", started_at=days_ago(2)),
        event("old-quarantined", started_at=days_ago(40)),
    )
    log_events_scan(event_ids=[rows[0].pk, rows[1].pk])
    scanner.failures_left = 1
    log_events_scan(event_ids=[rows[2].pk])
    assert log_retention_apply() == {"support": 1}
    assert set(LogEvent.objects.values_list("request_id", flat=True)) == {"new", "old-quarantined"}
    audit = AuditEvent.objects.get(action="logs.retention_applied")
    assert audit.changes["deleted"] == 1 and audit.team_slug == "support"
    assert log_retention_apply() == {}


def test_log_policy_is_governed(world):
    from apps.common.exceptions import PermissionDenied, Unprocessable

    with pytest.raises(PermissionDenied):
        team_log_policy_set(actor=world.eng, team=world.support, redaction_mode="mask", retention_days=30)
    with pytest.raises(Unprocessable):
        team_log_policy_set(actor=world.gov, team=world.support, redaction_mode="mask", retention_days=0)
    team_log_policy_set(actor=world.gov, team=world.support, redaction_mode="mask", retention_days=7)
    assert AuditEvent.objects.get(action="logs.policy_changed").changes["to"] == {
        "redaction_mode": "mask",
        "retention_days": 7,
    }


def test_only_one_export_runs_at_a_time(ingest, scanner, monkeypatch):
    warehouse = RecordingWarehouse()
    monkeypatch.setattr("apps.logs.services.get_warehouse", lambda: warehouse)
    rows = ingest(event("a"))
    log_events_scan(event_ids=[rows[0].pk])
    ExportState.objects.create(warehouse="recording", lease_until=timezone.now() + timedelta(minutes=5))
    assert log_events_export() == 0  # another export holds the lease
    ExportState.objects.filter(warehouse="recording").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    assert log_events_export() == 1  # an expired lease (a crashed export) is taken over
    assert ExportState.objects.get(warehouse="recording").lease_until is None
