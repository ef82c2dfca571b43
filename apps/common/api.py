"""What every API view shares.

- The error format: {"error": {"code", "message", "details"}} with the right status, for
  ApplicationError, validation errors, malformed or oversize bodies, and DRF's own refusals.
- `StrictSerializer`: an input serializer that refuses fields it does not know (400 naming them).
- `ApiView`: the base view (component names in the schema), pagination helpers and the
  OpenAPI description of the Bearer token scheme.
"""

from collections.abc import Iterator, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent, build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter, extend_schema_serializer, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from apps.common.database import (
    database_unavailable_json,
    database_unavailable_recover,
    is_database_unavailable,
    with_retry_after,
)
from apps.common.exceptions import ApplicationError
from apps.common.pagination import CursorPagination

# Errors


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
        for item in detail:
            if item not in ({}, [], None, ""):
                return _first_message(item)
    return str(detail)


def _error_leaves(codes: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(field path, code) for every error in a validation error's `get_codes()`."""
    if isinstance(codes, dict):
        for key, value in codes.items():
            name = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
            yield from _error_leaves(value, name)
    elif isinstance(codes, list):
        if all(isinstance(item, str) for item in codes):
            for item in codes:
                yield path, item
        else:
            for index, item in enumerate(codes):
                yield from _error_leaves(item, f"{path}[{index}]")
    elif codes:
        yield path, str(codes)


def _validation_error_response(exc: exceptions.ValidationError) -> Response:
    leaves = list(_error_leaves(exc.get_codes()))
    if leaves and all(code == UNKNOWN_FIELD for _, code in leaves):
        unknown = [path for path, _ in leaves]
        noun = "field" if len(unknown) == 1 else "fields"
        return error_response(
            400,
            "unknown_fields",
            f"Unknown {noun}: {', '.join(unknown)}.",
            {"unknown": unknown, "fields": exc.detail},
        )
    return error_response(400, "invalid", _first_message(exc.detail), {"fields": exc.detail})


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if is_database_unavailable(exc):
        # DRF catches a view's exceptions before any middleware: the same 503 as DatabaseUnavailableMiddleware.
        database_unavailable_recover(exc, path=getattr(context.get("request"), "path", ""))
        response = Response(database_unavailable_json(), status=503)
        return with_retry_after(response)  # type: ignore[return-value]
    if isinstance(exc, ApplicationError):
        return error_response(exc.status_code, exc.code, exc.message, exc.details)
    if isinstance(exc, RequestDataTooBig):
        return error_response(
            413,
            "request_too_large",
            "The request body is larger than the limit.",
            {"limit_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE},
        )
    if isinstance(exc, Http404):
        return error_response(404, "not_found", "Not found.")
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(403, "permission_denied", str(exc) or "You do not have permission to do this.")
    if isinstance(exc, exceptions.ValidationError):
        return _validation_error_response(exc)
    if isinstance(exc, exceptions.ParseError):
        return error_response(400, "malformed_request", str(exc.detail))
    if isinstance(exc, exceptions.Throttled):  # apps.common.ratelimit.RateLimited: its limit in details
        response = error_response(
            429, getattr(exc, "default_code", "throttled"), str(exc.detail), getattr(exc, "details", {})
        )
        if exc.wait is not None:
            response["Retry-After"] = str(exc.wait)
        return response
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


class ErrorSerializer(serializers.Serializer):
    class ErrorBodySerializer(serializers.Serializer):
        code = serializers.CharField()
        message = serializers.CharField()
        details = serializers.DictField()

    error = ErrorBodySerializer()


extend_schema_serializer(component_name="ErrorBody")(ErrorSerializer.ErrorBodySerializer)
extend_schema_serializer(component_name="Error")(ErrorSerializer)


def errors(*statuses: int) -> dict[int, type[serializers.Serializer]]:
    """`responses=` entries documenting the error format for these statuses."""
    return dict.fromkeys(statuses, ErrorSerializer)


# Input


UNKNOWN_FIELD = "unknown_field"
PAGINATION_PARAMS = frozenset({"cursor", "page_size"})


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare, at any depth, naming them (400 `unknown_fields`).
    `extra_allowed` names keys that are accepted and ignored (pagination parameters of a filter)."""

    extra_allowed: frozenset[str] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = {field.field_name for field in self._writable_fields} | self.extra_allowed
            unknown = sorted(str(key) for key in data if key not in known)
            if unknown:
                raise serializers.ValidationError(
                    {key: [ErrorDetail("Unknown field.", code=UNKNOWN_FIELD)] for key in unknown}
                )
        return super().to_internal_value(data)


class FilterSerializer(StrictSerializer):
    """Query-string filters of a paginated list."""

    extra_allowed = PAGINATION_PARAMS


class NamedChoiceField(serializers.ChoiceField):
    """A choice field documented as its own enum component, `<enum_name>Enum`: several fields called
    `status` with different choices would otherwise clash over one generated enum name."""

    def __init__(self, *, enum_name: str, **kwargs: Any) -> None:
        self.enum_name = enum_name
        super().__init__(**kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):
    target_class = NamedChoiceField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        name = f"{self.target.enum_name}Enum"
        component = ResolvedComponent(
            name=name,
            type=ResolvedComponent.SCHEMA,
            object=name,
            schema={"type": "string", "enum": [str(choice) for choice in self.target.choices]},
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


# Views


class ApiView(APIView):
    """Base of every API v1 view. Its nested serializers become schema components named after the
    view (`PromptCreateApi.InputSerializer` → `PromptCreateInput`), so that every view can call its
    own `InputSerializer` and `OutputSerializer` without clashing in the schema."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        prefix = cls.__name__.removesuffix("Api")
        for attr, value in list(vars(cls).items()):
            if (
                isinstance(value, type)
                and issubclass(value, serializers.BaseSerializer)
                and value.__qualname__ == f"{cls.__qualname__}.{attr}"
            ):
                extend_schema_serializer(component_name=prefix + attr.removesuffix("Serializer"))(value)


def paginated_response(
    *,
    request: Request,
    view: APIView,
    queryset: Any,
    serializer_class: type[serializers.BaseSerializer],
    pagination_class: type[BasePagination] = CursorPagination,
) -> Response:
    paginator = pagination_class()
    page = paginator.paginate_queryset(queryset, request, view=view)
    data = serializer_class(page, many=True, context={"request": request}).data
    return paginator.get_paginated_response(data)


PAGINATION_PARAMETERS = [
    OpenApiParameter("cursor", str, description="The page to fetch: taken from `next` or `previous`."),
    OpenApiParameter("page_size", int, description="Results per page (default 50, at most 500)."),
]


def paginated_schema(name: str, serializer_class: type[serializers.BaseSerializer]) -> serializers.Serializer:
    """The OpenAPI shape of a cursor-paginated list of `serializer_class`."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer_class(many=True),
        },
    )


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # nosec B106 # the scheme
