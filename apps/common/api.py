"""The API's error format: {"error": {"code", "message", "details"}} with the right status."""

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.exceptions import ApplicationError


def error_response(
    status_code: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    return Response(
        {"error": {"code": code, "message": message, "details": details or {}}}, status=status_code
    )


def _first_message(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key == "non_field_errors" else f"{key}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return error_response(exc.status_code, exc.code, exc.message, exc.details)
    if isinstance(exc, RequestDataTooBig):
        return error_response(413, "request_too_large", "The request body is larger than the limit.")
    if isinstance(exc, Http404):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(403, "permission_denied", str(exc) or "You do not have permission to do this.")
    if isinstance(exc, exceptions.ValidationError):
        return error_response(400, "invalid", _first_message(exc.detail), {"fields": exc.detail})
    if isinstance(exc, exceptions.ParseError):
        return error_response(400, "malformed_request", str(exc.detail))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
        code = (
            "not_authenticated" if isinstance(exc, exceptions.NotAuthenticated) else "authentication_failed"
        )
        response.status_code = status.HTTP_401_UNAUTHORIZED
    detail = getattr(exc, "detail", str(exc))
    message = _first_message(detail)
    response.data = {"error": {"code": code, "message": message, "details": {}}}
    return response
