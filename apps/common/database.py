"""The database went away: every request answers a clean 503 (never a 500, never a traceback) and the
service comes back by itself when the database does.

- `DatabaseUnavailableMiddleware` turns a database OperationalError or InterfaceError raised by a view into
  a 503: the API's error format under /api/, a translated page elsewhere. DRF views catch their exceptions
  before any middleware sees them: `apps.common.api.exception_handler` does the same for them, and the
  500 handler (`apps.common.views.server_error`) for one raised by a middleware.
- The connections of this thread are closed (outside a transaction), so the next request opens a new one
  instead of reusing a dead socket. Django closes unusable connections at the end of a request too, but
  only for the ones it can tell are broken; closing here does not depend on that.
- Each occurrence is logged once, at ERROR, without a traceback (the cause is an outage, not a bug).
"""

import contextlib
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.cache import add_never_cache_headers
from django.utils.translation import get_language

logger = logging.getLogger("apps.common.database")

DATABASE_ERRORS = (OperationalError, InterfaceError)
CODE = "database_unavailable"
MESSAGE = "The database is unavailable. Try again in a few seconds."


def is_database_unavailable(exc: BaseException | None) -> bool:
    return isinstance(exc, DATABASE_ERRORS)


def retry_after_seconds() -> int:
    return int(getattr(settings, "DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS", 5))


def database_unavailable_recover(exc: BaseException, *, path: str = "") -> None:
    """Log the failure and close this thread's connections, so the next request reconnects."""
    logger.error(
        "database unavailable: %s: %s",
        type(exc).__name__,
        str(exc).strip().splitlines()[0] if str(exc).strip() else "",
        extra={
            "event": CODE,
            "error": type(exc).__name__,
            "path": path,
        },
    )
    close_connections()


def close_connections() -> None:
    """Close this thread's database connections, so that the next query opens a new one."""
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            # Only inside a test's wrapping transaction: closing would end it. In production the
            # view's atomic blocks have exited (rolled back or dropped) before the error reaches here.
            continue
        # A dead socket may fail even to close; Django drops the connection object either way.
        with contextlib.suppress(Exception):
            connection.close()


def with_retry_after(response: HttpResponse) -> HttpResponse:
    response["Retry-After"] = str(retry_after_seconds())
    add_never_cache_headers(response)  # no proxy or browser may keep the outage page
    return response


def database_unavailable_json() -> dict[str, object]:
    return {
        "error": {
            "code": CODE,
            "message": MESSAGE,
            "details": {"retry_after_seconds": retry_after_seconds()},
        }
    }


def database_unavailable_response(request: HttpRequest) -> HttpResponse:
    """503 in the API's error format under /api/, else the styled, translated page. Rendered without
    the request's context processors: they would query the database that just failed."""
    if request.path.startswith("/api/"):
        return with_retry_after(JsonResponse(database_unavailable_json(), status=503))
    html = render_to_string(
        "503.html", {"retry_after": retry_after_seconds(), "language": get_language() or "en"}
    )
    return with_retry_after(HttpResponse(html, status=503))


class DatabaseUnavailableMiddleware:
    """A database error raised by a view → 503 (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not is_database_unavailable(exception):
            return None
        database_unavailable_recover(exception, path=request.path)
        return database_unavailable_response(request)
