"""Where scanned (redacted) log events are exported: `get_warehouse()` returns the configured one.

WAREHOUSE=local     (default) the Django database already holds them: nothing to send
WAREHOUSE=bigquery  apps.cloud.warehouse.bigquery.BigQueryWarehouse: streaming inserts with the
                    request id as insert id, into a table partitioned by day, clustered by team and model
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from apps.cloud.warehouse.base import EXPORT_COLUMNS, Warehouse, WarehouseUnavailable

WAREHOUSES = {
    "local": "apps.cloud.warehouse.local.LocalWarehouse",
    "bigquery": "apps.cloud.warehouse.bigquery.BigQueryWarehouse",
}


@cache
def get_warehouse() -> Warehouse:
    name = settings.WAREHOUSE
    if name not in WAREHOUSES:
        raise ValueError(f"WAREHOUSE={name!r}: use one of {', '.join(WAREHOUSES)}")
    return import_string(WAREHOUSES[name]).from_settings()


__all__ = ["EXPORT_COLUMNS", "Warehouse", "WarehouseUnavailable", "get_warehouse"]
