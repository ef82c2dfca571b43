import csv
import io
import json
import re

from django.urls import reverse

from apps.audit.models import AuditEvent


def _stream(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_table_lists_events_with_labels_and_changes(world, catalog, client_as):
    body = client_as(world.gov).get(reverse("audit:list")).content.decode()
    assert "Version submitted for review" in body
    assert "status: draft → in_review" in body
    assert "finance" not in body.split("<tbody>")[1]  # gov reads support's trail only


def test_filters_and_htmx_partial(world, catalog, client_as):
    client = client_as(world.gov)
    response = client.get(
        reverse("audit:list"), {"action": "catalog.version_approved"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert "<html" not in body
    assert "1 event" in body and "Version approved" in body
    by_actor = client.get(reverse("audit:list"), {"actor": "gov"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Label moved" in by_actor and "Version drafted" not in by_actor
    group = client.get(reverse("audit:list"), {"action": "catalog."}, HTTP_HX_REQUEST="true").content.decode()
    assert "Prompt created" in group and "Approval requested" not in group
    future = client.get(reverse("audit:list"), {"since": "2999-01-01"}).content.decode()
    assert "No event matches these filters." in future


def test_csv_export_streams_the_filtered_events(world, catalog, client_as):
    response = client_as(world.gov).get(reverse("audit:export_csv"), {"action": "catalog.version_created"})
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(_stream(response))))
    assert len(rows) == 3  # v1, v2, v3 of greeting; not finance's invoice
    assert {row["action"] for row in rows} == {"catalog.version_created"}
    assert rows[0]["action_label"] == "Version drafted"
    assert rows[0]["team"] == "support" and rows[0]["actor"] == "eng"
    assert json.loads(rows[0]["changes"])["number"] == 3
    stored = AuditEvent.objects.get(sequence=int(rows[0]["sequence"]))
    assert rows[0]["hash"] == stored.hash


def test_jsonl_export(world, catalog, client_as):
    response = client_as(world.admin).get(reverse("audit:export_jsonl"))
    lines = _stream(response).splitlines()
    events = [json.loads(line) for line in lines]
    visible = AuditEvent.objects.exclude(team_slug="finance").count()
    assert len(events) == visible
    assert events[0]["sequence"] > events[-1]["sequence"]
    assert {"sequence", "occurred_at", "actor", "action", "changes", "context", "hash", "prev_hash"} <= set(
        events[0]
    )


def test_csv_cells_cannot_be_formulas(world, client_as):
    from apps.accounts.services import team_create

    team_create(actor=None, slug="x", name="=HYPERLINK(1)")
    from apps.accounts.services import membership_grant

    membership_grant(actor=None, user=world.admin, team=world.support, role="admin")
    response = client_as(world.admin).get(reverse("audit:export_csv"))
    assert ",=HYPERLINK" not in _stream(response)


def test_verify_now(world, catalog, client_as):
    before = AuditEvent.objects.count()
    response = client_as(world.gov).post(reverse("audit:verify"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert "every link holds" in response.content.decode()
    AuditEvent.objects.filter(sequence=3).update(target_repr="tampered")
    broken = client_as(world.gov).post(reverse("audit:verify"), HTTP_HX_REQUEST="true").content.decode()
    assert "broken at event #3" in broken
    assert AuditEvent.objects.count() == before


def test_no_edit_or_delete_path(world, catalog, client_as):
    body = client_as(world.admin).get(reverse("audit:list")).content.decode()
    controls = re.findall(r"<(?:a|button)\b[^>]*>(.*?)</(?:a|button)>", body, re.S | re.I)
    assert controls  # the page has its links and buttons…
    assert not [
        c for c in controls if re.search(r"\b(delete|edit|remove)\b", c, re.I)
    ]  # …none edits or deletes
    assert client_as(world.admin).post(reverse("audit:list")).status_code == 405


def test_verify_now_without_javascript(world, catalog, client_as):
    response = client_as(world.gov).post(reverse("audit:verify"), follow=True)
    assert "The audit chain is intact" in response.content.decode()


def test_history_restore_gets_the_whole_page(world, catalog, client_as):
    response = client_as(world.gov).get(
        reverse("audit:list"), HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true"
    )
    assert "<html" in response.content.decode()
