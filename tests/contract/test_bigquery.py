"""The BigQuery export (WAREHOUSE=bigquery) against bqemulator, with the real google-cloud-bigquery client.

bqemulator keeps a table's partitioning and clustering and serves queries with parameters, but it does
not deduplicate insertAll rows by insert id (real BigQuery does, best effort, for about a minute): that
the retried exports below leave no duplicates is the warehouse's own check of which rows are already
there, the check that also covers retries long after the insert ids are forgotten.
"""

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import NotFound
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from apps.cloud.warehouse import EXPORT_COLUMNS, WarehouseUnavailable, get_warehouse
from apps.cloud.warehouse.bigquery import BigQueryWarehouse, WarehouseRejected, insert_id
from tests.contract.bq_emulator import bq_emulator, fresh_bq_emulator  # noqa: F401 (fixtures)

DAY = datetime(2026, 3, 14, 9, 30, tzinfo=UTC)


def make_rows(count: int, *, team: str = "payments", start: int = 0, days: int = 1) -> list[dict]:
    """Export rows as the pipeline hands them over: timestamps as ISO 8601 strings, JSON as Python values."""
    rows = []
    for i in range(start, start + count):
        started = DAY + timedelta(days=i % days, seconds=i)
        rows.append(
            {
                "request_id": f"req-{i:05d}",
                "team": team,
                "app": "checkout",
                "prompt": "refund-reply",
                "prompt_version": 1 + i % 3,
                "model": ("gemini-2.5-flash", "llama-3-8b-lora")[i % 2],
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(milliseconds=850)).isoformat(),
                "status": "ok" if i % 7 else "error",
                "error": "" if i % 7 else "upstream timeout",
                "input": [
                    {"role": "system", "content": "Eres un asistente de pagos."},
                    {
                        "role": "user",
                        "content": f"Mi correo es [EMAIL_ADDRESS], pedido nº {i} — ¿reembolso? 🙏",
                    },
                ],
                "output": f"Reembolso {i} en curso para [PERSON_NAME].",
                "tokens_in": 40 + i,
                "tokens_out": 12,
                "latency_ms": 850,
                "end_user": "tok_3f9a",
                "metadata": {"channel": "web", "attempt": i % 2, "tags": ["es", "refund"]},
                "pii_types": ["EMAIL_ADDRESS"] if i % 2 else [],
                "stored_at": (started + timedelta(seconds=2)).isoformat(),
            }
        )
    return rows


@pytest.fixture
def bq_settings(settings, bq_emulator):  # noqa: F811 (the fixture imported above)
    """Production settings aimed at the emulator, with a dataset of this test's own."""
    settings.WAREHOUSE = "bigquery"
    settings.GOOGLE_CLOUD_PROJECT = bq_emulator.project
    settings.BIGQUERY_API_ENDPOINT = bq_emulator.url
    settings.BIGQUERY_DATASET = f"atalaya_{uuid.uuid4().hex[:10]}"
    settings.BIGQUERY_TABLE = "log_events"
    settings.BIGQUERY_LOCATION = "EU"
    yield settings
    bq_emulator.clear_fault()


@pytest.fixture
def warehouse(bq_settings) -> BigQueryWarehouse:
    """As production builds it (`from_settings`: an http:// endpoint means anonymous credentials), with no
    client retries and a short timeout so that failures show at once."""
    return BigQueryWarehouse.from_settings(retry=None, timeout=5.0)


@pytest.fixture
def client(bq_emulator) -> bigquery.Client:  # noqa: F811
    return bigquery.Client(
        project=bq_emulator.project,
        credentials=AnonymousCredentials(),
        client_options=ClientOptions(api_endpoint=bq_emulator.url),
    )


def read_back(client: bigquery.Client, table_id: str) -> list[dict]:
    rows = client.query_and_wait(
        f"SELECT * FROM `{table_id}` ORDER BY team, request_id",
        job_config=bigquery.QueryJobConfig(use_query_cache=False),
    )
    return [dict(row) for row in rows]


def keys(rows: list[dict]) -> list[tuple[str, str]]:
    return sorted((row["team"], row["request_id"]) for row in rows)


def test_first_export_creates_the_dataset_and_a_day_partitioned_table_clustered_by_team_and_model(
    warehouse,
    client,
    bq_settings,
    bq_emulator,  # noqa: F811
):
    with pytest.raises(NotFound):
        client.get_table(warehouse.table_id)

    assert warehouse.export(make_rows(3)) == 3

    dataset = client.get_dataset(warehouse.dataset_id)
    assert dataset.location == "EU"
    table = client.get_table(warehouse.table_id)
    assert table.table_id == bq_settings.BIGQUERY_TABLE
    assert table.time_partitioning.type_ == bigquery.TimePartitioningType.DAY
    assert table.time_partitioning.field == "started_at"
    assert table.clustering_fields == ["team", "model"]
    assert [(f.name, f.field_type, f.mode) for f in table.schema] == list(EXPORT_COLUMNS)

    # Once per process (per instance): the next exports do not ask for the table again.
    tables_asked = bq_emulator.requests()["tables"]
    warehouse.export(make_rows(2, start=3))
    assert bq_emulator.requests()["tables"] == tables_asked


def test_get_warehouse_builds_the_bigquery_one_from_settings(bq_settings):
    get_warehouse.cache_clear()
    try:
        built = get_warehouse()
        assert isinstance(built, BigQueryWarehouse)
        assert (
            built.table_id == f"{bq_settings.GOOGLE_CLOUD_PROJECT}.{bq_settings.BIGQUERY_DATASET}.log_events"
        )
        assert isinstance(
            built.client._credentials, AnonymousCredentials
        )  # only because the endpoint is http://
    finally:
        get_warehouse.cache_clear()


def test_exported_rows_read_back_as_sent_in_requests_of_at_most_500(warehouse, client, bq_emulator):  # noqa: F811
    rows = make_rows(1100, days=3) + make_rows(5, team="support")
    before = bq_emulator.requests()["insertAll"]

    assert warehouse.export(rows) == 1105

    assert bq_emulator.requests()["insertAll"] - before == 3  # 500 + 500 + 105
    stored = read_back(client, warehouse.table_id)
    assert keys(stored) == keys(rows)
    by_key = {(r["team"], r["request_id"]): r for r in stored}
    for sent in (rows[0], rows[7], rows[1101], rows[-1]):
        got = by_key[(sent["team"], sent["request_id"])]
        for name, type_, _mode in EXPORT_COLUMNS:
            if type_ == "TIMESTAMP":
                assert got[name] == datetime.fromisoformat(sent[name]), name
            else:
                assert got[name] == sent[name], name
    assert json.dumps(by_key[("payments", "req-00001")]["input"], ensure_ascii=False).count("🙏") == 1


def test_requests_are_also_cut_by_size(bq_settings, client, bq_emulator):  # noqa: F811
    warehouse = BigQueryWarehouse.from_settings(retry=None, timeout=5.0, max_bytes_per_request=20_000)
    rows = make_rows(40)
    for row in rows:
        row["output"] = "ñ" * 2000  # 12 KB a row as sent (non-ASCII is escaped): one row a request
    before = bq_emulator.requests()["insertAll"]

    assert warehouse.export(rows) == 40

    assert bq_emulator.requests()["insertAll"] - before == 40
    assert len(read_back(client, warehouse.table_id)) == 40


def test_a_retried_export_never_duplicates(warehouse, client, bq_emulator):  # noqa: F811
    rows = make_rows(30, days=2)
    assert warehouse.export(rows) == 30
    inserts = bq_emulator.requests()["insertAll"]

    # The same batch again (the watermark did not move): nothing is sent, nothing doubles.
    assert warehouse.export(rows) == 0
    assert bq_emulator.requests()["insertAll"] == inserts
    # A batch overlapping the last one, with a row twice inside it: only the 10 new rows go, once.
    overlapping = make_rows(20, start=20, days=2)
    assert warehouse.export([*overlapping, overlapping[-1]]) == 10
    # The same request id in another team is another event.
    assert warehouse.export(make_rows(2, team="support")) == 2
    # A new process (a fresh instance) sees the same.
    assert BigQueryWarehouse.from_settings(retry=None, timeout=5.0).export(rows) == 0

    stored = read_back(client, warehouse.table_id)
    assert keys(stored) == keys(make_rows(40, days=2) + make_rows(2, team="support"))  # 42, each once


def test_an_export_that_failed_half_way_resumes_without_duplicates(bq_settings, client, bq_emulator):  # noqa: F811
    warehouse = BigQueryWarehouse.from_settings(retry=None, timeout=5.0, max_rows_per_request=10)
    rows = make_rows(35)
    bq_emulator.fault(503, "/insertAll", skip=2, times=1)  # the third request of four fails

    with pytest.raises(WarehouseUnavailable) as failed:
        warehouse.export(rows)
    assert not isinstance(failed.value, WarehouseRejected)
    assert "ServiceUnavailable" in str(failed.value)
    assert len(read_back(client, warehouse.table_id)) == 20

    assert warehouse.export(rows) == 15  # the retry, from the same watermark
    stored = read_back(client, warehouse.table_id)
    assert keys(stored) == keys(rows)


def test_a_503_raises_warehouse_unavailable_and_a_later_retry_succeeds(warehouse, client, bq_emulator):  # noqa: F811
    bq_emulator.fault(503)  # everything: the first call is the table check
    with pytest.raises(WarehouseUnavailable, match="preparing the table"):
        warehouse.export(make_rows(5))

    bq_emulator.clear_fault()
    assert warehouse.export(make_rows(5)) == 5

    bq_emulator.fault(503, "/queries")  # the check of what is already there
    with pytest.raises(WarehouseUnavailable, match="already exported"):
        warehouse.export(make_rows(5, start=5))
    bq_emulator.fault(429, "/insertAll")
    with pytest.raises(WarehouseUnavailable, match="TooManyRequests"):
        warehouse.export(make_rows(5, start=5))

    bq_emulator.clear_fault()
    assert warehouse.export(make_rows(10)) == 5
    assert len(read_back(client, warehouse.table_id)) == 10


def test_a_stopped_emulator_raises_warehouse_unavailable(settings, fresh_bq_emulator):  # noqa: F811
    settings.GOOGLE_CLOUD_PROJECT = fresh_bq_emulator.project
    settings.BIGQUERY_API_ENDPOINT = fresh_bq_emulator.url
    warehouse = BigQueryWarehouse.from_settings(retry=None, timeout=5.0)
    assert warehouse.export(make_rows(3)) == 3

    fresh_bq_emulator.stop()

    with pytest.raises(WarehouseUnavailable) as failed:
        warehouse.export(make_rows(3, start=3))
    assert not isinstance(failed.value, WarehouseRejected)
    assert "ConnectionError" in str(failed.value)


def test_rows_refused_by_bigquery_raise_with_the_first_errors(warehouse, client, bq_emulator):  # noqa: F811
    warehouse.export(make_rows(1))
    # Real BigQuery answers 200 with insertErrors (the bad row "invalid", the others "stopped"); the
    # emulator answers 500 instead, so the answer is BigQuery's, canned.
    insert_errors = {
        "kind": "bigquery#tableDataInsertAllResponse",
        "insertErrors": [
            {"index": 0, "errors": [{"reason": "stopped", "location": "", "message": ""}]},
            {
                "index": 1,
                "errors": [{"reason": "invalid", "location": "tokens_in", "message": "no such field"}],
            },
        ],
    }
    bq_emulator.fault(200, "/insertAll", body=insert_errors)

    with pytest.raises(WarehouseRejected) as refused:
        warehouse.export(make_rows(2, start=1))
    message = str(refused.value)
    assert "refused 2 of 2 rows" in message
    assert "payments/req-00002: invalid tokens_in no such field" in message
    assert "req-00001" not in message  # "stopped" rows are not the cause
    assert isinstance(refused.value, WarehouseUnavailable)  # so the watermark does not move

    # The emulator's own answer to a value it cannot take: the request fails, nothing is stored.
    bq_emulator.clear_fault()
    bad = make_rows(2, start=1)
    bad[1]["tokens_in"] = "many"
    with pytest.raises(WarehouseUnavailable):
        warehouse.export(bad)
    assert len(read_back(client, warehouse.table_id)) == 1


def test_an_existing_table_lacking_exported_columns_is_refused_clearly(warehouse, client):
    client.create_dataset(warehouse.dataset_id)
    client.create_table(
        bigquery.Table(
            warehouse.table_id, schema=[bigquery.SchemaField(n, t, mode=m) for n, t, m in EXPORT_COLUMNS[:6]]
        )
    )
    with pytest.raises(WarehouseRejected, match="lacks the exported columns started_at, ended_at"):
        warehouse.export(make_rows(1))


def test_an_existing_table_is_used_as_it_is(warehouse, client):
    client.create_dataset(warehouse.dataset_id)
    client.create_table(warehouse.table_definition())
    assert warehouse.export(make_rows(4)) == 4
    assert len(read_back(client, warehouse.table_id)) == 4


def test_insert_ids_are_team_and_request_id_within_128_characters():
    assert insert_id({"team": "payments", "request_id": "req-1"}) == "payments/req-1"
    long = insert_id({"team": "payments", "request_id": "r" * 128})
    assert len(long) <= 128
    assert long == insert_id({"team": "payments", "request_id": "r" * 128})
    assert long != insert_id({"team": "support", "request_id": "r" * 128})
