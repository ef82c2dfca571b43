"""No raw PII anywhere: the labelled corpus goes in through the API, is scanned by the local scanner and
exported to BigQuery (the emulator, with the real client); then every planted identifier is searched for
in every table of the database, in the exported rows, in the API's answers and in the application's log
output. None may be found."""

import json
import logging
import uuid

import pytest
from django.db import connection
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from apps.cloud.pii import get_scanner
from apps.cloud.warehouse import get_warehouse
from apps.logs.models import EventState, LogEvent
from apps.logs.services import log_events_export, log_events_scan
from bench.pii_corpus import generate
from tests.contract.bq_emulator import bq_emulator  # noqa: F401  (a fixture)
from tests.factories import make_token

SAMPLES = 400


@pytest.fixture
def exporting_to_bigquery(settings, bq_emulator):  # noqa: F811
    settings.PII_SCANNER = "local"
    settings.WAREHOUSE = "bigquery"
    settings.GOOGLE_CLOUD_PROJECT = bq_emulator.project
    settings.BIGQUERY_API_ENDPOINT = bq_emulator.url
    settings.BIGQUERY_DATASET = f"atalaya_{uuid.uuid4().hex[:10]}"
    get_scanner.cache_clear()
    get_warehouse.cache_clear()
    yield settings
    get_scanner.cache_clear()
    get_warehouse.cache_clear()


def _events(samples):
    """Every piece of text of an event carries corpus text: input, output, error, end user, metadata."""
    events = []
    for i in range(0, len(samples) - 3, 4):
        a, b, c, d = samples[i : i + 4]
        events.append(
            {
                "request_id": f"corpus-{i}",
                "started_at": "2026-11-21T10:00:00Z",
                "model": "gemini-2.5-flash",
                "input": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": a.text},
                ],
                "output": b.text,
                "status": "error" if i % 8 == 0 else "ok",
                "error": c.text if i % 8 == 0 else None,
                "end_user": d.text[:300],
                "metadata": {"note": d.text, "nested": [c.text]},
            }
        )
    return events


def _database_text() -> str:
    """Every value of every row of every table, as text (bytes decoded leniently)."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        chunks.append(bytes(value).decode("utf-8", "replace"))
                    elif isinstance(value, dict | list):  # PostgreSQL's jsonb arrives decoded
                        chunks.append(json.dumps(value, ensure_ascii=False))
                    elif value is not None:
                        chunks.append(str(value))
    return "\n".join(chunks)


def test_planted_identifiers_are_nowhere(world, api_as, exporting_to_bigquery, caplog):
    caplog.set_level(logging.DEBUG)
    samples = generate(SAMPLES, seed=424242)
    used = samples[: len(_events(samples)) * 4]
    planted = {s.text[span.start : span.end] for s in used for span in s.spans}
    planted = {p for p in planted if len(p) >= 6}  # shorter values (e.g. "1.2.3.4") match unrelated text
    assert len(planted) > 500

    client = api_as(token=make_token(world.eng, world.support, "logs:write", "logs:read"))
    answers = []
    events = _events(samples)
    for start in range(0, len(events), 40):
        response = client.post(
            "/api/v1/logs/batch",
            data=json.dumps({"events": events[start : start + 40]}),
            content_type="application/json",
        )
        assert response.status_code == 202
        answers.append(response.content.decode())
    assert LogEvent.objects.count() == len(events)

    log_events_scan(event_ids=list(LogEvent.objects.values_list("pk", flat=True)))
    assert LogEvent.objects.filter(state=EventState.STORED).count() == len(events)
    assert log_events_export() == len(events)

    listing = client.get("/api/v1/logs/?page_size=500")
    assert len(listing.json()["results"]) == len(events)
    answers.append(listing.content.decode())

    bq = bigquery.Client(
        project=exporting_to_bigquery.GOOGLE_CLOUD_PROJECT,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=exporting_to_bigquery.BIGQUERY_API_ENDPOINT),
    )
    table = (
        f"{exporting_to_bigquery.GOOGLE_CLOUD_PROJECT}.{exporting_to_bigquery.BIGQUERY_DATASET}.log_events"
    )
    exported = [json.dumps(dict(row), default=str) for row in bq.query_and_wait(f"SELECT * FROM `{table}`")]
    assert len(exported) == len(events)

    places = {
        "database": _database_text(),
        "exported rows": "\n".join(exported),
        "API answers": "\n".join(answers),
        "application log output": "\n".join(r.getMessage() for r in caplog.records) + caplog.text,
    }
    for where, text in places.items():
        leaked = sorted(p for p in planted if p in text)
        assert not leaked, f"{len(leaked)} planted identifiers found in the {where}: {leaked[:5]}"
    assert "[EMAIL_ADDRESS]" in places["exported rows"]  # the redacted text did go everywhere
