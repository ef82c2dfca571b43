"""The log pages: the explorer, an event, the aggregates (all product owners see), the pipeline's
status with the quarantine, "Retry now" and the team log policy."""

import json
import re
from dataclasses import dataclass

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.common.exceptions import Unprocessable
from apps.logs.models import EventState, LogEvent, TeamLogPolicy
from apps.logs.services import log_events_scan
from tests.factories import make_token
from tests.logs.conftest import EmailOnlyScanner, event

PLANTED = "ana.garcia@example.com"
# Redacted text of the support events: what product owners must never see, not even as placeholders.
REDACTED_TEXTS = [
    "[EMAIL_ADDRESS]",
    "my order is late",
    "Sorry Ana",
    "Be kind.",
    "nothing personal here",
    "upstream model refused",
    "u-123",
    "contact",
]


@dataclass
class Logs:
    pii: LogEvent  # support, stored, an e-mail redacted
    clean: LogEvent  # support, stored, no PII, another model, status error
    finance: LogEvent  # finance, stored
    staged: LogEvent  # support, not scanned yet
    quarantined: LogEvent  # support, the scanner failed


@pytest.fixture
def scanner(monkeypatch):
    fake = EmailOnlyScanner()
    monkeypatch.setattr("apps.logs.services.get_scanner", lambda: fake)
    return fake


@pytest.fixture
def logs(world, api_as, scanner) -> Logs:
    def send(team, user, *events):
        client = api_as(token=make_token(user, team, "logs:write"))
        response = client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
        )
        assert response.status_code == 202, response.content

    send(
        world.support,
        world.eng,
        event("req-support-pii"),
        event(
            "req-support-clean",
            model="gemini-2.5-pro",
            prompt_version=2,
            status="error",
            input=[{"role": "user", "content": "nothing personal here"}],
            output="",
            error="upstream model refused",
            metadata={},
        ),
        event("req-support-staged"),
        event("req-support-quarantined", app="billing-bot"),
    )
    send(world.finance, world.fin_eng, event("req-finance", output="finance answer"))
    by_id = {e.request_id: e for e in LogEvent.objects.all()}
    scanner.failures_left = 1
    log_events_scan(event_ids=[by_id["req-support-quarantined"].pk])
    log_events_scan(event_ids=[by_id[r].pk for r in ("req-support-pii", "req-support-clean", "req-finance")])
    for e in by_id.values():
        e.refresh_from_db()
    assert by_id["req-support-quarantined"].state == EventState.QUARANTINED
    assert by_id["req-support-staged"].state == EventState.STAGED
    return Logs(
        pii=by_id["req-support-pii"],
        clean=by_id["req-support-clean"],
        finance=by_id["req-finance"],
        staged=by_id["req-support-staged"],
        quarantined=by_id["req-support-quarantined"],
    )


def _client(world, username) -> Client:
    client = Client()
    if username != "anon":
        client.force_login(getattr(world, username))
    return client


def _body(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _rows(body: str) -> list[str]:
    """Request ids in the explorer's table, in order."""
    return re.findall(r'<code title="(req-[\w-]+)"', body)


# The role matrix

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_eng", "fin_gov"]

PAGES = {
    "logs:explorer": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
    "logs:summary": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 200,
        "ann1": 403,
        "fin_eng": 200,
        "fin_gov": 200,
    },
    "logs:event": {
        "admin": 200,
        "gov": 200,
        "eng": 200,
        "owner": 403,
        "ann1": 403,
        "fin_eng": 404,
        "fin_gov": 404,
    },
    "logs:status": {
        "admin": 200,
        "gov": 200,
        "eng": 403,
        "owner": 403,
        "ann1": 403,
        "fin_eng": 403,
        "fin_gov": 200,
    },
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, logs):
    url = reverse(page, args=[logs.pii.pk]) if page == "logs:event" else reverse(page)
    for username in USERS:
        response = _client(world, username).get(url)
        if username == "anon":
            assert response.status_code == 302, page
            assert response["Location"].startswith(reverse("accounts:login"))
            continue
        assert response.status_code == PAGES[page][username], (page, username, response.status_code)


def _snapshot():
    return (
        AuditEvent.objects.count(),
        list(TeamLogPolicy.objects.values_list("team_id", "redaction_mode", "retention_days")),
        list(LogEvent.objects.order_by("pk").values_list("state", "next_attempt_at", "attempts")),
    )


WRITES = {
    "logs:retry": {},
    "logs:policy": {"policy-support-redaction_mode": "mask", "policy-support-retention_days": "30"},
}
REFUSALS = {"eng": 403, "owner": 403, "ann1": 403, "fin_eng": 404, "fin_gov": 404}


@pytest.mark.parametrize("write", list(WRITES))
def test_refused_writes_change_nothing(write, world, logs):
    url = reverse(write, args=["support"])
    before = _snapshot()
    anonymous = _client(world, "anon").post(url, WRITES[write])
    assert anonymous.status_code == 302 and reverse("accounts:login") in anonymous["Location"]
    for username, status in REFUSALS.items():
        response = _client(world, username).post(url, WRITES[write])
        assert response.status_code == status, (write, username, response.status_code)
        assert _snapshot() == before, (write, username)
    unknown = _client(world, "gov").post(reverse(write, args=["nope"]), WRITES[write])
    assert unknown.status_code == 404
    assert _snapshot() == before


@pytest.mark.parametrize("write", list(WRITES))
def test_writes_need_post_and_csrf(write, world, logs):
    url = reverse(write, args=["support"])
    before = _snapshot()
    assert _client(world, "gov").get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(world.gov)
    assert strict.post(url, WRITES[write]).status_code == 403
    assert _snapshot() == before


# The explorer


def test_explorer_lists_the_redacted_events_of_the_users_teams(world, logs):
    body = _body(_client(world, "eng").get(reverse("logs:explorer")))
    assert _rows(body) == ["req-support-clean", "req-support-pii"]  # newest first (same time: last sent)
    assert "req-finance" not in body  # another team
    assert "req-support-staged" not in body and "req-support-quarantined" not in body  # not stored yet
    assert reverse("logs:event", args=[logs.pii.pk]) in body
    assert "gemini-2.5-pro" in body and "support-reply@v1" in body
    assert '<span class="badge badge-warning mono-badge">EMAIL_ADDRESS</span>' in body
    assert "[EMAIL_ADDRESS] today" in body  # the redacted answer's preview
    assert "upstream model refused" in body  # the redacted error's preview
    assert PLANTED not in body
    finance = _body(_client(world, "fin_eng").get(reverse("logs:explorer")))
    assert _rows(finance) == ["req-finance"]


@pytest.mark.parametrize(
    "query, expected",
    [
        ({"pii": "yes"}, {"req-support-pii"}),
        ({"pii": "no"}, {"req-support-clean"}),
        ({"info_type": "EMAIL_ADDRESS"}, {"req-support-pii"}),
        ({"model": "gemini-2.5-pro"}, {"req-support-clean"}),
        ({"status": "error"}, {"req-support-clean"}),
        ({"status": "ok"}, {"req-support-pii"}),
        ({"app": "support-bot", "prompt": "support-reply", "version": "2"}, {"req-support-clean"}),
        ({"team": "support"}, {"req-support-pii", "req-support-clean"}),
        ({"since": "2026-11-21", "until": "2026-11-21"}, {"req-support-pii", "req-support-clean"}),
        ({"since": "2026-11-22"}, set()),
        ({"until": "2026-11-20"}, set()),
        ({"q": "ORDER IS LATE"}, {"req-support-pii"}),
        ({"q": "[email_address]"}, {"req-support-pii"}),
        ({"q": PLANTED}, set()),  # the raw value was never stored, so it cannot be found
    ],
)
def test_explorer_filters(world, logs, query, expected):
    response = _client(world, "gov").get(reverse("logs:explorer"), query, HTTP_HX_REQUEST="true")
    body = _body(response)
    assert "<html" not in body  # the htmx fragment only
    assert set(_rows(body)) == expected, query
    if not expected:
        assert "No event matches these filters." in body


def test_explorer_invalid_filters_are_shown_and_left_out(world, logs):
    body = _body(_client(world, "gov").get(reverse("logs:explorer"), {"version": "abc", "team": "finance"}))
    assert "Some filters are not valid and were left out" in body
    assert set(_rows(body)) == {"req-support-pii", "req-support-clean"}  # never finance's
    assert "req-finance" not in body


def test_explorer_full_page_has_accessible_filters(world, logs):
    body = _body(_client(world, "eng").get(reverse("logs:explorer")))
    assert 'role="search"' in body and 'hx-target="#log-results"' in body
    for name in ("q", "team", "app", "prompt", "version", "model", "status", "since", "until", "pii"):
        assert f'<label for="id_{name}">' in body, name
    assert '<label for="id_info_type">' in body
    assert '<datalist id="log-models">' in body and '<option value="gemini-2.5-pro">' in body
    assert '<caption class="visually-hidden">' in body
    assert reverse("logs:status") not in body  # engineers do not manage the pipeline
    assert reverse("logs:status") in _body(_client(world, "gov").get(reverse("logs:explorer")))


# Product owners: aggregates, never text


def test_product_owner_sees_aggregates_and_no_text(world, logs):
    client = _client(world, "owner")
    for response in (
        client.get(reverse("logs:explorer")),
        client.get(reverse("logs:summary")),
        client.get(reverse("logs:explorer"), {"q": "order", "pii": "yes"}),
        client.get(reverse("logs:explorer"), {"model": "gemini-2.5-flash"}, HTTP_HX_REQUEST="true"),
    ):
        body = _body(response)
        for text in [*REDACTED_TEXTS, PLANTED, "req-support", "req-finance"]:
            assert text not in body, text
        assert 'name="q"' not in body  # no search of the text
    body = _body(client.get(reverse("logs:explorer")))
    assert "Events by model" in body and "gemini-2.5-pro" in body and "gemini-2.5-flash" in body
    assert "Events by infoType" in body and "EMAIL_ADDRESS" in body
    stats = dict(re.findall(r"<dt>([^<]+)</dt><dd>([\d,]+)", body))
    assert stats == {"Events": "2", "With PII": "1", "Errors": "1", "Tokens in": "1,624", "Tokens out": "190"}
    assert reverse("logs:event", args=[logs.pii.pk]) not in body
    filtered = _body(client.get(reverse("logs:explorer"), {"pii": "no"}, HTTP_HX_REQUEST="true"))
    assert "<html" not in filtered
    assert dict(re.findall(r"<dt>([^<]+)</dt><dd>([\d,]+)", filtered))["Events"] == "1"


def test_engineers_see_the_summary_too(world, logs):
    body = _body(_client(world, "eng").get(reverse("logs:summary")))
    assert "Logs summary" in body and "Events by model" in body
    assert reverse("logs:explorer") in body


# No raw PII anywhere


def test_the_planted_email_never_appears(world, logs):
    pages = [
        reverse("logs:explorer"),
        reverse("logs:summary"),
        reverse("logs:status"),
        reverse("logs:event", args=[logs.pii.pk]),
        reverse("logs:explorer") + "?q=ana",
    ]
    for username in ("admin", "gov", "eng", "owner", "fin_eng", "fin_gov"):
        client = _client(world, username)
        for url in pages:
            response = client.get(url)
            assert PLANTED.encode() not in response.content, (username, url)
            assert b"ana.garcia" not in response.content, (username, url)


# One event


def test_event_page_shows_the_redacted_event_and_its_findings(world, logs):
    body = _body(_client(world, "gov").get(reverse("logs:event", args=[logs.pii.pk])))
    assert 'class="message message-system"' in body and 'class="message message-user"' in body
    assert 'I am <mark class="pii">[EMAIL_ADDRESS]</mark>, my order is late' in body
    assert 'Sorry Ana, we will write to <mark class="pii">[EMAIL_ADDRESS]</mark> today.' in body
    assert "&quot;channel&quot;: &quot;web&quot;" in body  # metadata, redacted
    assert '&quot;contact&quot;: &quot;<mark class="pii">[EMAIL_ADDRESS]</mark>&quot;' in body
    assert "u-123" in body  # end user
    findings = body.split('id="findings-heading"')[1].split("</table>")[0]
    assert "EMAIL_ADDRESS" in findings and ">3<" in findings and "VERY_LIKELY" in findings
    assert "Replace" in body and "<code>test</code>" in body  # redaction mode and scanner
    assert "812" in body and "1180 ms" in body
    assert PLANTED not in body


def test_event_page_of_an_error(world, logs):
    body = _body(_client(world, "eng").get(reverse("logs:event", args=[logs.clean.pk])))
    assert 'id="error-heading"' in body and "upstream model refused" in body
    assert "The scanner found no personal data in this event." in body
    assert "No output." in body


def test_event_page_404s(world, logs):
    gov = _client(world, "gov")
    for event_id in (logs.finance.pk, logs.staged.pk, logs.quarantined.pk, 999_999):
        assert gov.get(reverse("logs:event", args=[event_id])).status_code == 404, event_id
    assert _client(world, "fin_eng").get(reverse("logs:event", args=[logs.pii.pk])).status_code == 404
    assert _client(world, "fin_eng").get(reverse("logs:event", args=[logs.finance.pk])).status_code == 200


# The pipeline's status, retry now


def test_status_page_counts_and_quarantine(world, logs):
    body = _body(_client(world, "gov").get(reverse("logs:status")))
    support = body.split('<th scope="row" class="primary">support</th>')[1].split("</tr>")[0]
    numbers = re.findall(r'<td class="text-right">(?:<span class="badge badge-danger">)?(\d+)', support)
    assert numbers == ["1", "1", "2"]  # waiting, quarantined, stored
    assert reverse("logs:retry", args=["support"]) in body
    assert "finance" not in body  # gov manages support only
    quarantine = body.split('id="quarantine-list"')[1].split("</section>")[0]
    assert "req-support-quarantined" in quarantine and "billing-bot" in quarantine
    assert "scanner unreachable (test)" in quarantine
    assert re.search(r'<td class="text-right">1</td>', quarantine)  # one attempt
    for text in [*REDACTED_TEXTS, PLANTED]:
        assert text not in quarantine, text
    assert "The embedded default keeps the logs" in body  # WAREHOUSE=local
    fin = _body(_client(world, "fin_gov").get(reverse("logs:status")))
    assert "req-support-quarantined" not in fin and reverse("logs:retry", args=["finance"]) not in fin


def test_status_page_shows_the_export_state(world, logs):
    from apps.logs.models import ExportState

    ExportState.objects.create(warehouse="bigquery", exported_total=7, last_error="bigquery unreachable")
    body = _body(_client(world, "admin").get(reverse("logs:status")))
    assert "<code>bigquery</code>" in body and ">7<" in body and "bigquery unreachable" in body


def test_retry_now(world, logs, enqueued, django_capture_on_commit_callbacks):
    client = _client(world, "gov")
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("logs:retry", args=["support"]))
    assert response.status_code == 302 and response["Location"] == reverse("logs:status")
    audit = AuditEvent.objects.filter(action="logs.quarantine_retried").get()
    assert audit.actor_username == "gov" and audit.changes == {"events": 1}
    assert ("workers.logs.scan_events", ([logs.quarantined.pk],)) in enqueued
    page = _body(client.get(reverse("logs:status")))
    assert "Retrying 1 quarantined event of support now." in page
    LogEvent.objects.filter(pk=logs.quarantined.pk).update(state=EventState.STORED)
    empty = client.post(reverse("logs:retry", args=["support"]), follow=True).content.decode()
    assert "Nothing of support is quarantined." in empty


# The log policy


def test_policy_form_saves_and_audits(world, logs):
    client = _client(world, "admin")
    page = _body(client.get(reverse("logs:status")))
    assert 'action="' + reverse("logs:policy", args=["support"]) + '"' in page
    assert "<legend>Redaction</legend>" in page
    assert f'value="{settings.LOG_DEFAULT_RETENTION_DAYS}"' in page
    response = client.post(
        reverse("logs:policy", args=["support"]),
        {"policy-support-redaction_mode": "token", "policy-support-retention_days": "30"},
    )
    assert response.status_code == 302
    policy = TeamLogPolicy.objects.get(team=world.support)
    assert (policy.redaction_mode, policy.retention_days) == ("token", 30)
    audit = AuditEvent.objects.filter(action="logs.policy_changed").get()
    assert audit.changes["to"] == {"redaction_mode": "token", "retention_days": 30}
    page = _body(client.get(reverse("logs:status")))
    assert "Log policy of support saved." in page
    assert '<td class="nowrap">30 days</td>' in page and "Token" in page


@pytest.mark.parametrize(
    "data, error",
    [
        (
            {"policy-support-redaction_mode": "mask", "policy-support-retention_days": "0"},
            "Ensure this value is greater than or equal to 1.",
        ),
        (
            {"policy-support-redaction_mode": "mask", "policy-support-retention_days": "5000"},
            "Ensure this value is less than or equal to 3650.",
        ),
        (
            {"policy-support-redaction_mode": "shout", "policy-support-retention_days": "30"},
            "Select a valid choice.",
        ),
    ],
)
def test_policy_form_validation_writes_nothing(world, logs, data, error):
    before = _snapshot()
    response = _client(world, "gov").post(reverse("logs:policy", args=["support"]), data)
    body = _body(response)
    assert error in body
    assert 'aria-invalid="true"' in body or "errorlist" in body
    assert _snapshot() == before


def test_policy_service_refusal_is_shown_and_writes_nothing(world, logs, monkeypatch):
    def refuse(**kwargs):
        raise Unprocessable("Retention is between 1 and 3650 days.", code="invalid_retention")

    monkeypatch.setattr("apps.logs.views.team_log_policy_set", refuse)
    before = _snapshot()
    response = _client(world, "gov").post(
        reverse("logs:policy", args=["support"]),
        {"policy-support-redaction_mode": "mask", "policy-support-retention_days": "30"},
    )
    body = _body(response)
    assert 'role="alert"' in body and "Retention is between 1 and 3650 days." in body
    assert _snapshot() == before


# Navigation and language


def test_logs_in_the_navigation(world, client_as):
    def keys(user):
        response = client_as(user).get(reverse("accounts:tokens"))
        return [item["key"] for item in response.context["nav_items"]]

    for username in ("admin", "gov", "eng", "owner", "fin_eng"):
        assert "logs" in keys(getattr(world, username)), username
    assert "logs" not in keys(world.ann1)
    active = client_as(world.owner).get(reverse("logs:explorer")).context["nav_items"]
    assert [item["key"] for item in active if item["active"]] == ["logs"]


def test_spanish_pages(world, logs):
    client = _client(world, "gov")
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "es"
    explorer = _body(client.get(reverse("logs:explorer")))
    assert "Registros" in explorer and "Filtrar registros" in explorer
    status = _body(client.get(reverse("logs:status")))
    assert "Reintentar ahora" in status and "Cuarentena" in status
    event_page = _body(client.get(reverse("logs:event", args=[logs.pii.pk])))
    assert "Hallazgos" in event_page
