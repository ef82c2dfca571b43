"""Readiness: `/readyz` says what this process needs is reachable (`/healthz`, in views, that it answers).

Each readiness check is cheap (one trivial query, one broker connection with a short timeout, one cache
round trip) and never raises: a failure is reported by name, with the reason logged.
"""

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache

from apps.common.database import DATABASE_ERRORS, close_connections

logger = logging.getLogger(__name__)

OK = "ok"
FAILED = "failed"


def _timeout() -> float:
    return float(getattr(settings, "READYZ_TIMEOUT_SECONDS", 2.0))


def check_database() -> None:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DATABASE_ERRORS:
        close_connections()  # the next probe reconnects instead of reusing a dead connection
        raise


def _filesystem_folders() -> list[Path]:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}
    keys = ("data_folder_in", "data_folder_out", "control_folder")
    return [Path(options[key]) for key in keys if options.get(key)]


def check_broker() -> None:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem"):
        # The embedded broker is a set of folders: reachable means they exist and this process may write.
        folders = _filesystem_folders()
        if not folders:
            raise RuntimeError("no broker folders configured")
        for folder in folders:
            if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
                raise RuntimeError(f"broker folder {folder} is missing or not writable")
        return
    from kombu import Connection

    timeout = _timeout()
    options = dict(settings.CELERY_BROKER_TRANSPORT_OPTIONS or {})
    with Connection(url, connect_timeout=timeout, transport_options=options) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)


def check_cache() -> None:
    cache = caches["default"]
    key = f"atalaya:readyz:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=10)
    try:
        if cache.get(key) != "1":
            raise RuntimeError("the cache did not return the value just set")
    finally:
        cache.delete(key)


CHECKS: dict[str, Callable[[], None]] = {
    "database": check_database,
    "broker": check_broker,
    "cache": check_cache,
}


def readiness() -> dict[str, str]:
    """{"database": "ok" | "failed", ...}: every check runs, none raises."""
    results: dict[str, str] = {}
    for name, check in CHECKS.items():
        try:
            check()
        except Exception as exc:  # any failure means "not ready", whatever raised it
            logger.warning("readiness check %s failed: %s", name, exc, extra={"check": name})
            results[name] = FAILED
        else:
            results[name] = OK
    return results


@never_cache
def readyz(request: HttpRequest) -> HttpResponse:
    """Ready: 200 when the database, the broker and the cache answer, else 503 naming what failed."""
    results = readiness()
    failed = sorted(name for name, state in results.items() if state != OK)
    body: dict[str, object] = dict(results)
    if failed:
        body["failed"] = failed
    return JsonResponse(body, status=503 if failed else 200)
