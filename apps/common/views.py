"""Site-wide views (home, health, error pages) and the small helpers every UI view shares."""

import sys
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.paginator import Page, Paginator
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme

from apps.accounts.roles import CATALOG_READERS, Role
from apps.accounts.selectors import user_team_ids
from apps.common.database import (
    database_unavailable_recover,
    database_unavailable_response,
    is_database_unavailable,
)
from apps.common.exceptions import ApplicationError, NotFound, PermissionDenied

# UI helpers

MAX_ID = 2**63 - 1  # the largest value a database integer column holds


def parse_id(value: str | None) -> int | None:
    """A positive whole number written in ASCII digits (a query string's id or version number), else None:
    "²".isdigit() is true yet int("²") raises, and a number past MAX_ID breaks the database's lookup."""
    if not value or not (value.isascii() and value.isdecimal()):
        return None
    number = int(value)
    return number if 0 < number <= MAX_ID else None


def raise_for_http(exc: ApplicationError) -> None:
    """A service's NotFound becomes a 404 page and its PermissionDenied a 403 page; any other
    refusal is returned to the caller, which shows it on the form."""
    if isinstance(exc, NotFound):
        raise Http404(exc.message)
    if isinstance(exc, PermissionDenied):
        raise DjangoPermissionDenied(exc.message)


def paginate(request: HttpRequest, queryset: Any, per_page: int = 25) -> Page:
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def safe_next(request: HttpRequest, fallback: str) -> str:
    """The `next` field of a POST if it points inside this site, else the fallback."""
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return fallback


def is_htmx(request: HttpRequest) -> bool:
    """An htmx request for a fragment (a history restore wants the whole page)."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request


def render_page_or_fragment(
    request: HttpRequest, page: str, fragment: str, context: dict[str, Any]
) -> HttpResponse:
    """The whole page, or only its fragment for htmx; caches keep the two apart."""
    response = render(request, fragment if is_htmx(request) else page, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


# Pages


@login_required
def home(request: HttpRequest) -> HttpResponse:
    if user_team_ids(request.user, CATALOG_READERS):
        return redirect("catalog:list")
    if user_team_ids(request.user, [Role.ANNOTATOR]):
        return redirect("feedback:index")
    return redirect("accounts:tokens")


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"error": {"code": "not_found", "message": "Not found.", "details": {}}}, status=404
        )
    return render(request, "404.html", status=404)


def forbidden(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        message = str(exception) if exception else "You do not have permission to do this."
        return JsonResponse(
            {"error": {"code": "permission_denied", "message": message, "details": {}}}, status=403
        )
    return render(request, "403.html", {"reason": str(exception or "")}, status=403)


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if exc is not None and is_database_unavailable(exc):
        # Raised by a middleware (a view's goes through DatabaseUnavailableMiddleware): 503, not 500.
        database_unavailable_recover(exc, path=request.path)
        return database_unavailable_response(request)
    if _wants_json(request):
        return JsonResponse(
            {
                "error": {
                    "code": "server_error",
                    "message": "Something went wrong on our side.",
                    "details": {},
                }
            },
            status=500,
        )
    return render(request, "500.html", status=500)
