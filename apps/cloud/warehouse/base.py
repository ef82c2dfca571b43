"""The warehouse interface. Rows are already redacted: nothing raw is ever exported."""

from collections.abc import Sequence
from typing import Any, Protocol

# The exported row, one per log event (BigQuery types in comments). `request_id` is the insert id.
EXPORT_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("request_id", "STRING", "REQUIRED"),
    ("team", "STRING", "REQUIRED"),
    ("app", "STRING", "NULLABLE"),
    ("prompt", "STRING", "NULLABLE"),
    ("prompt_version", "INT64", "NULLABLE"),
    ("model", "STRING", "REQUIRED"),
    ("started_at", "TIMESTAMP", "REQUIRED"),  # the partitioning column (by day)
    ("ended_at", "TIMESTAMP", "NULLABLE"),
    ("status", "STRING", "NULLABLE"),
    ("error", "STRING", "NULLABLE"),
    ("input", "JSON", "NULLABLE"),  # redacted messages [{"role", "content"}]
    ("output", "STRING", "NULLABLE"),  # redacted
    ("tokens_in", "INT64", "NULLABLE"),
    ("tokens_out", "INT64", "NULLABLE"),
    ("latency_ms", "INT64", "NULLABLE"),
    ("end_user", "STRING", "NULLABLE"),
    ("metadata", "JSON", "NULLABLE"),  # redacted
    ("pii_types", "STRING", "REPEATED"),
    ("stored_at", "TIMESTAMP", "REQUIRED"),
)


class WarehouseUnavailable(Exception):
    """The warehouse could not take the rows now; the export is retried from the same watermark."""


class Warehouse(Protocol):
    name: str

    @classmethod
    def from_settings(cls) -> "Warehouse": ...

    def export(self, rows: Sequence[dict[str, Any]]) -> int:
        """Send rows (dicts keyed by EXPORT_COLUMNS; timestamps as ISO 8601 strings). Idempotent: a row whose
        request_id was already sent is not duplicated. Returns how many rows were sent."""
        ...
