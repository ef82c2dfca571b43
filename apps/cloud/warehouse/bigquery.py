"""WAREHOUSE=bigquery: scanned (redacted) log events streamed into a BigQuery table.

The table (`GOOGLE_CLOUD_PROJECT`.`BIGQUERY_DATASET`.`BIGQUERY_TABLE`) is created on the first export in a
process if it is missing (the dataset too, in `BIGQUERY_LOCATION`): its schema is `EXPORT_COLUMNS`,
partitioned by day on `started_at`, clustered by `team` and `model`. An existing table is used as it is,
provided it has every exported column.

Rows go in with `tabledata.insertAll` (`Client.insert_rows_json`), in requests of at most 500 rows and
about 9 MB (BigQuery's limit is 10 MB a request), each row with an insert id made from its team and
request id (the request id alone is only unique within a team).

How a row is exported once:
- The caller exports in order and moves its watermark only after `export()` returned; any failure raises
  `WarehouseUnavailable` (or its subclass `WarehouseRejected`), so the same rows are sent again later.
- A retried export re-sends the same insert ids. BigQuery drops a repeated insert id, but only on a
  best-effort basis and only for a short while (at least a minute), so insert ids alone do not make a
  retry an hour later safe. (bqemulator does not deduplicate by insert id at all.)
- So before inserting, `export()` asks the table which of the batch's (team, request id) pairs are
  already there, within the batch's `started_at` range (so only those days' partitions are read), and
  sends only the others. Streamed rows are normally visible to queries within seconds (after the first
  insert into a table idle for hours, BigQuery has documented a warm-up of up to two minutes); the
  insert ids cover that short window. The query reads three narrow columns of the partitions the batch
  touches: cheap at this console's volumes; at many millions of events a day a caller could turn it off
  (`check_existing=False`) and rely on the watermark and insert ids alone.
- Two exporters running at once on the same rows are not covered: the caller must not run two exports
  at once (a lock around the beat task). Exactly-once across long gaps therefore rests on the caller's
  watermark together with this check; insert ids only narrow the window right after an insert.

Values: timestamps as ISO 8601 strings (or datetimes); JSON columns (`input`, `metadata`) as Python
values, sent JSON-encoded as insertAll expects for the JSON type (what `Client.insert_rows` does for a
JSON field; bqemulator stores that text as JSON too, and would store a raw object as its Python repr);
REPEATED `pii_types` as a list (None becomes []). Columns outside `EXPORT_COLUMNS` are not sent.

Errors: transient ones (5xx, 429, rate limits, timeouts, connection errors) raise `WarehouseUnavailable`;
anything BigQuery refuses (per-row insert errors, a 4xx, a table lacking columns) raises
`WarehouseRejected`, a `WarehouseUnavailable` too, with the first errors in its message: the watermark
does not move and the export is retried until someone fixes the cause.

Construction is production's: project from settings, credentials from the environment (Application
Default Credentials), `BIGQUERY_API_ENDPOINT` as the client's api_endpoint when set. A plain `http://`
endpoint can only be an emulator (Google's endpoints are https), so there, and only there, the client
sends no credentials (`AnonymousCredentials`): nothing is ever sent in clear text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials, Credentials
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from apps.cloud.warehouse.base import EXPORT_COLUMNS, WarehouseUnavailable

log = logging.getLogger(__name__)

PARTITION_FIELD = "started_at"
CLUSTERING_FIELDS = ["team", "model"]
MAX_ROWS_PER_REQUEST = 500  # BigQuery's recommendation for insertAll
MAX_BYTES_PER_REQUEST = 9_000_000  # under insertAll's 10 MB request limit
MAX_IDS_PER_QUERY = 10_000  # request ids per existence check (a query parameter)
MAX_INSERT_ID_LENGTH = 128
DEFAULT_TIMEOUT_SECONDS = 30.0  # per HTTP request; the client's own default is none at all
# The client's default retry keeps trying for 10 minutes; the beat task retries later from the same watermark.
PRODUCTION_RETRY = DEFAULT_RETRY.with_deadline(60.0)

_JSON_COLUMNS = frozenset(name for name, type_, _mode in EXPORT_COLUMNS if type_ == "JSON")
_TIMESTAMP_COLUMNS = frozenset(name for name, type_, _mode in EXPORT_COLUMNS if type_ == "TIMESTAMP")
_REPEATED_COLUMNS = frozenset(name for name, _type, mode in EXPORT_COLUMNS if mode == "REPEATED")

_TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.InternalServerError,
    api_exceptions.BadGateway,
    api_exceptions.GatewayTimeout,
    api_exceptions.TooManyRequests,
    api_exceptions.DeadlineExceeded,
    api_exceptions.RetryError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
    auth_exceptions.TransportError,
    ConnectionError,
    TimeoutError,
)
_TRANSIENT_REASONS = frozenset({"rateLimitExceeded", "backendError", "internalError", "badGateway"})


class WarehouseRejected(WarehouseUnavailable):
    """BigQuery refused the request or some rows: retrying alone will not help, the cause needs fixing.
    A WarehouseUnavailable all the same, so the watermark does not move."""


def schema() -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(name, type_, mode=mode) for name, type_, mode in EXPORT_COLUMNS]


def insert_id(row: dict[str, Any]) -> str:
    """The row's insert id: team and request id (a request id is unique within its team only), hashed
    when longer than 128 characters, to keep insert ids short."""
    key = f"{row['team']}/{row['request_id']}"
    if len(key) <= MAX_INSERT_ID_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class BigQueryWarehouse:
    name = "bigquery"

    def __init__(
        self,
        client: bigquery.Client,
        dataset: str,
        table: str,
        *,
        location: str | None = None,
        retry: Retry | None = PRODUCTION_RETRY,
        timeout: float | None = DEFAULT_TIMEOUT_SECONDS,
        check_existing: bool = True,
        max_rows_per_request: int = MAX_ROWS_PER_REQUEST,
        max_bytes_per_request: int = MAX_BYTES_PER_REQUEST,
    ) -> None:
        self.client = client
        if any(c in f"{client.project}{dataset}{table}" for c in "`\\\n"):
            raise ValueError(
                f"BigQuery names cannot contain backticks, backslashes or newlines: {dataset}.{table}"
            )
        self.dataset_id = f"{client.project}.{dataset}"
        self.table_id = f"{self.dataset_id}.{table}"
        self.location = location or None
        self.retry = retry
        self.timeout = timeout
        self.check_existing = check_existing
        self.max_rows_per_request = max_rows_per_request
        self.max_bytes_per_request = max_bytes_per_request
        self._ready = False
        self._query_location: str | None = self.location
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, *, credentials: Credentials | None = None, **options: Any) -> BigQueryWarehouse:
        """The client as production builds it; `credentials` and `options` (see __init__) are for tests."""
        endpoint = settings.BIGQUERY_API_ENDPOINT
        if credentials is None and endpoint.startswith("http://"):
            credentials = AnonymousCredentials()  # an emulator: never send a token in clear text
        client = bigquery.Client(
            project=settings.GOOGLE_CLOUD_PROJECT or None,
            credentials=credentials,
            location=settings.BIGQUERY_LOCATION or None,
            client_options=ClientOptions(api_endpoint=endpoint) if endpoint else None,
        )
        return cls(
            client,
            settings.BIGQUERY_DATASET,
            settings.BIGQUERY_TABLE,
            location=settings.BIGQUERY_LOCATION,
            **options,
        )

    # -- the table -------------------------------------------------------------------------------------

    def ensure_table(self) -> None:
        """Create the dataset and the table if missing (once per instance, that is once per process)."""
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with _translated_errors("preparing the table"):
                dataset = self._ensure_dataset()
                table = self._ensure_table()
            missing = [
                name for name, _type, _mode in EXPORT_COLUMNS if name not in {f.name for f in table.schema}
            ]
            if missing:
                raise WarehouseRejected(
                    f"BigQuery table {self.table_id} lacks the exported columns {', '.join(missing)}: "
                    "add them (ALTER TABLE … ADD COLUMN) or point BIGQUERY_TABLE at a new table"
                )
            self._query_location = dataset.location or self.location
            self._ready = True

    def _ensure_dataset(self) -> bigquery.Dataset:
        # get first: a service account may be allowed to use the dataset but not to create datasets
        try:
            return self.client.get_dataset(self.dataset_id, retry=self.retry, timeout=self.timeout)
        except api_exceptions.NotFound:
            pass
        dataset = bigquery.Dataset(self.dataset_id)
        dataset.location = self.location
        dataset.description = "Atalaya: redacted prompt and response logs"
        log.info("Creating BigQuery dataset %s in %s", self.dataset_id, self.location)
        return self.client.create_dataset(dataset, exists_ok=True, retry=self.retry, timeout=self.timeout)

    def _ensure_table(self) -> bigquery.Table:
        try:
            return self.client.get_table(self.table_id, retry=self.retry, timeout=self.timeout)
        except api_exceptions.NotFound:
            pass
        log.info("Creating BigQuery table %s", self.table_id)
        return self.client.create_table(
            self.table_definition(), exists_ok=True, retry=self.retry, timeout=self.timeout
        )

    def table_definition(self) -> bigquery.Table:
        table = bigquery.Table(self.table_id, schema=schema())
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=PARTITION_FIELD
        )
        table.clustering_fields = CLUSTERING_FIELDS
        table.description = "Atalaya: scanned log events, redacted (one row per team and request id)"
        return table

    # -- export ----------------------------------------------------------------------------------------

    def export(self, rows: Sequence[dict[str, Any]]) -> int:
        """Insert the rows not yet in the table; returns how many were sent (0 when all were there)."""
        batch: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            encoded = encode_row(row)
            batch.setdefault((encoded["team"], encoded["request_id"]), encoded)
        if not batch:
            return 0
        self.ensure_table()
        try:
            present = self.existing_keys(list(batch.values())) if self.check_existing else set()
            pending = [row for key, row in batch.items() if key not in present]
            sent = 0
            for chunk in self._chunks(pending):
                self._insert(chunk, sent)
                sent += len(chunk)
        except WarehouseUnavailable as exc:
            if isinstance(exc.__cause__, api_exceptions.NotFound):
                self._ready = False  # deleted meanwhile: the next export creates it again
            raise
        return sent

    def existing_keys(self, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """The (team, request id) pairs of these rows that are already in the table."""
        started = [_parse_timestamp(row["started_at"], "started_at") for row in rows]
        wanted = {(row["team"], row["request_id"]) for row in rows}
        ids = sorted({request_id for _team, request_id in wanted})
        found: set[tuple[str, str]] = set()
        query = (
            f"SELECT DISTINCT team, request_id FROM `{self.table_id}` "  # noqa: S608 (names from settings, checked) # nosec B608
            f"WHERE {PARTITION_FIELD} BETWEEN @lo AND @hi AND request_id IN UNNEST(@request_ids)"
        )
        for start in range(0, len(ids), MAX_IDS_PER_QUERY):
            config = bigquery.QueryJobConfig(
                query_parameters=[
                    bigquery.ScalarQueryParameter("lo", "TIMESTAMP", min(started)),
                    bigquery.ScalarQueryParameter("hi", "TIMESTAMP", max(started)),
                    bigquery.ArrayQueryParameter(
                        "request_ids", "STRING", ids[start : start + MAX_IDS_PER_QUERY]
                    ),
                ],
                use_query_cache=False,
                labels={"atalaya": "export-dedup"},
            )
            with _translated_errors("checking which rows are already exported"):
                result = self.client.query_and_wait(
                    query,
                    job_config=config,
                    location=self._query_location,
                    api_timeout=self.timeout,
                    wait_timeout=self.timeout,
                    retry=self.retry,
                    job_retry=None,  # a failed check fails the export, retried by the next beat
                )
                found.update((row["team"], row["request_id"]) for row in result)
        return found & wanted

    def _chunks(self, rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
        chunk: list[dict[str, Any]] = []
        size = 0
        for row in rows:
            row_size = len(json.dumps(row))  # as sent: ASCII, non-ASCII escaped + MAX_INSERT_ID_LENGTH + 32
            if chunk and (
                len(chunk) >= self.max_rows_per_request or size + row_size > self.max_bytes_per_request
            ):
                yield chunk
                chunk, size = [], 0
            chunk.append(row)
            size += row_size
        if chunk:
            yield chunk

    def _insert(self, chunk: list[dict[str, Any]], already_sent: int) -> None:
        with _translated_errors(f"inserting {len(chunk)} rows after {already_sent}"):
            errors = self.client.insert_rows_json(
                self.table_id,
                chunk,
                row_ids=[insert_id(row) for row in chunk],
                skip_invalid_rows=False,
                retry=self.retry,
                timeout=self.timeout,
            )
        if errors:
            first = "; ".join(
                f"{chunk[e['index']]['team']}/{chunk[e['index']]['request_id']}: "
                + ", ".join(
                    f"{x.get('reason')} {x.get('location', '')} {x.get('message', '')}".strip()
                    for x in e["errors"]
                )
                for e in errors
                if any(x.get("reason") != "stopped" for x in e.get("errors", ()))
            )[:1000]
            raise WarehouseRejected(
                f"BigQuery refused {len(errors)} of {len(chunk)} rows: {first or errors[:3]}"
            )


def encode_row(row: dict[str, Any]) -> dict[str, Any]:
    """One export row as insertAll's JSON: the exported columns only, JSON columns encoded."""
    if not row.get("team") or not row.get("request_id"):
        raise WarehouseRejected(f"an exported row needs a team and a request_id: {sorted(row)}")
    out: dict[str, Any] = {}
    for name, _type, _mode in EXPORT_COLUMNS:
        value = row.get(name)
        if name in _JSON_COLUMNS:
            value = None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        elif name in _TIMESTAMP_COLUMNS:
            value = None if value is None else _parse_timestamp(value, name).isoformat()
        elif name in _REPEATED_COLUMNS:
            value = list(value or ())
        out[name] = value
    out["team"], out["request_id"] = str(out["team"]), str(out["request_id"])
    return out


def _parse_timestamp(value: Any, column: str) -> datetime:
    try:
        parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise WarehouseRejected(f"{column}={value!r} is not an ISO 8601 timestamp") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@contextmanager
def _translated_errors(doing: str) -> Iterator[None]:
    """Google client errors → WarehouseUnavailable (transient) or WarehouseRejected (the rest)."""
    try:
        yield
    except WarehouseUnavailable:
        raise
    except Exception as exc:
        message = f"BigQuery, {doing}: {type(exc).__name__}: {exc}"[:1000]
        if _is_transient(exc):
            raise WarehouseUnavailable(message) from exc
        if isinstance(exc, api_exceptions.GoogleAPIError | auth_exceptions.GoogleAuthError):
            raise WarehouseRejected(message) from exc
        raise  # a bug here: let it through as it is


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _TRANSIENT):
        return True
    if isinstance(exc, api_exceptions.NotFound):
        return True  # the table went away under us: it is created again on the next export
    reasons = {e.get("reason") for e in getattr(exc, "errors", None) or () if isinstance(e, dict)}
    return bool(reasons & (_TRANSIENT_REASONS | {"quotaExceeded"}))
