"""API v1 for logs: batch ingestion (the hot path applications call), the redacted explorer, and the
OpenTelemetry endpoint (`POST /v1/traces`, OTLP/HTTP: the mapping is in apps.logs.otlp)."""

import msgspec
from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.authentication import BearerTokenAuthentication
from apps.accounts.models import Team
from apps.accounts.roles import Scope
from apps.accounts.selectors import team_get_by_slug, user_team_ids
from apps.common.api import (
    PAGINATION_PARAMETERS,
    ApiView,
    FilterSerializer,
    error_response,
    errors,
    paginated_response,
    paginated_schema,
    validated,
)
from apps.common.exceptions import ApplicationError, NotFound, PermissionDenied
from apps.common.metrics import log_events_received, otlp_spans_received
from apps.common.pagination import CursorPagination
from apps.common.permissions import HasScope
from apps.logs import otlp
from apps.logs.schemas import BatchError, LogEventIn, batch_decode, event_decode, texts_too_large
from apps.logs.selectors import LOG_TEXT_READERS, LogFilters, log_event_get, log_event_list
from apps.logs.services import LOG_WRITERS, log_events_ingest


class PayloadTooLarge(ApplicationError):
    status_code = 413
    default_code = "payload_too_large"


def _read_body(request: Request) -> bytes:
    """The body, refused with 413 past LOG_BATCH_MAX_BYTES before it is read into memory."""
    limit = settings.LOG_BATCH_MAX_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    too_large = PayloadTooLarge(
        f"The batch is larger than {limit // (1024 * 1024)} MB: send fewer events per request.",
        details={"limit_bytes": limit},
    )
    if declared > limit:
        raise too_large
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    return body


def _event_team(request: Request) -> Team:
    token = getattr(request.user, "active_token", None)
    if token is not None:
        return token.team
    slug = request.query_params.get("team", "")
    writable = team_get_by_slug(user=request.user, slug=slug, roles=LOG_WRITERS) if slug else None
    if writable is None:
        teams = user_team_ids(request.user, LOG_WRITERS)
        if not slug and len(teams) == 1:
            return Team.objects.get(pk=teams[0])
        raise NotFound("Name the team the logs belong to with ?team=<slug>.", code="team_required")
    return writable


EVENT_EXAMPLE = {
    "request_id": "7f3c2a9e-1b7d-4c55-9a51-2f0c7d1e9b10",
    "started_at": "2026-11-21T10:00:00Z",
    "ended_at": "2026-11-21T10:00:01.2Z",
    "app": "support-bot",
    "prompt": "support-reply",
    "prompt_version": 3,
    "model": "gemini-2.5-flash",
    "input": [{"role": "system", "content": "…"}, {"role": "user", "content": "…"}],
    "output": "…",
    "tokens_in": 812,
    "tokens_out": 95,
    "latency_ms": 1180,
    "status": "ok",
    "error": None,
    "end_user": "hashed-or-opaque-id",
    "metadata": {"channel": "web"},
}


class LogBatchApi(ApiView):
    """Send up to 500 events. Each is validated on its own: one bad event is rejected with its error and
    never blocks the others. `request_id` is the idempotency key: an event sent twice is counted as a
    duplicate and stored once. Accepted events are scanned for PII and stored redacted shortly after."""

    permission_classes = [HasScope]
    required_scope = Scope.LOGS_WRITE
    parser_classes: list = []

    class OutputSerializer(serializers.Serializer):
        accepted = serializers.IntegerField()
        duplicate = serializers.IntegerField()
        rejected = serializers.IntegerField()
        errors = serializers.ListField(child=serializers.DictField())

    @extend_schema(
        operation_id="logs_batch",
        parameters=[OpenApiParameter("team", str, description="Team slug (browser sessions only).")],
        request=inline_serializer(
            "LogBatch", {"events": serializers.ListField(child=serializers.DictField())}
        ),
        examples=[OpenApiExample("One event", value={"events": [EVENT_EXAMPLE]}, request_only=True)],
        responses={202: OutputSerializer} | errors(400, 401, 403, 404, 413),
    )
    def post(self, request: Request) -> Response:
        body = _read_body(request)
        try:
            raws = batch_decode(body)
        except BatchError as exc:
            return error_response(400, "malformed_request", str(exc))
        if len(raws) > settings.LOG_BATCH_MAX_EVENTS:
            raise PayloadTooLarge(
                f"{len(raws)} events in one batch: at most {settings.LOG_BATCH_MAX_EVENTS}.",
                details={"limit_events": settings.LOG_BATCH_MAX_EVENTS},
            )
        valid: list[tuple[int, LogEventIn]] = []
        rejected: list[dict] = []
        for index, raw in enumerate(raws):
            try:
                event = event_decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                rejected.append(
                    {
                        "index": index,
                        "request_id": _request_id_of(raw),
                        "code": "invalid_event",
                        "message": str(exc),
                    }
                )
                continue
            if texts_too_large(event):
                raise PayloadTooLarge(
                    f"Event {index} ({event.request_id}) has a text over 1 MB.",
                    details={"index": index, "limit_bytes": settings.LOG_TEXT_MAX_BYTES},
                )
            valid.append((index, event))
        team = _event_team(request)
        result = log_events_ingest(actor=request.user, team=team, events=valid)
        log_events_received(accepted=result.accepted, duplicate=result.duplicate, rejected=len(rejected))
        return Response(
            {
                "accepted": result.accepted,
                "duplicate": result.duplicate,
                "rejected": len(rejected),
                "errors": rejected,
            },
            status=202,
        )


def _request_id_of(raw: msgspec.Raw) -> str | None:
    try:
        value = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    request_id = value.get("request_id") if isinstance(value, dict) else None
    return request_id[:128] if isinstance(request_id, str) else None


class LogCursorPagination(CursorPagination):
    ordering = ("-started_at", "-id")


class LogEventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    request_id = serializers.CharField()
    team = serializers.CharField(source="team.slug")
    app = serializers.CharField()
    prompt = serializers.CharField()
    prompt_version = serializers.IntegerField(allow_null=True)
    model = serializers.CharField()
    started_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    input = serializers.JSONField(help_text="Redacted messages.")
    output = serializers.CharField(help_text="Redacted.")
    error = serializers.CharField(help_text="Redacted.")
    tokens_in = serializers.IntegerField(allow_null=True)
    tokens_out = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.IntegerField(allow_null=True)
    end_user = serializers.CharField(help_text="Redacted.")
    metadata = serializers.JSONField(help_text="Redacted.")
    has_pii = serializers.BooleanField()
    pii_types = serializers.ListField(child=serializers.CharField())
    redaction_mode = serializers.CharField()
    stored_at = serializers.DateTimeField()


class LogListApi(ApiView):
    """Redacted logs of your teams, newest first. Product owners see aggregates only (in the console)."""

    permission_classes = [HasScope]
    required_scope = Scope.LOGS_READ

    class FilterSerializer(FilterSerializer):
        team = serializers.CharField(required=False, max_length=63)
        app = serializers.CharField(required=False, max_length=100)
        prompt = serializers.CharField(required=False, max_length=100)
        prompt_version = serializers.IntegerField(required=False, min_value=1)
        model = serializers.CharField(required=False, max_length=200)
        status = serializers.CharField(required=False, max_length=20)
        since = serializers.DateTimeField(required=False)
        until = serializers.DateTimeField(required=False)
        has_pii = serializers.BooleanField(required=False, allow_null=True, default=None)
        info_type = serializers.CharField(required=False, max_length=60)
        search = serializers.CharField(required=False, max_length=200, help_text="Text in the redacted logs.")

    @extend_schema(
        operation_id="logs_list",
        parameters=[FilterSerializer, *PAGINATION_PARAMETERS],
        responses={200: paginated_schema("PaginatedLogEventList", LogEventOutputSerializer)}
        | errors(400, 401, 403),
    )
    def get(self, request: Request) -> Response:
        data = validated(self.FilterSerializer, request.query_params)
        if not user_team_ids(request.user, LOG_TEXT_READERS):
            raise PermissionDenied("Your roles show log aggregates only, not log text.")
        slug = data.pop("team", "")
        team = team_get_by_slug(user=request.user, slug=slug, roles=LOG_TEXT_READERS) if slug else None
        if slug and team is None:
            raise NotFound(f"No team {slug!r}.")
        queryset = log_event_list(
            user=request.user, filters=LogFilters(team_id=team.pk if team else None, **data)
        )
        return paginated_response(
            request=request,
            view=self,
            queryset=queryset,
            serializer_class=LogEventOutputSerializer,
            pagination_class=LogCursorPagination,
        )


class LogEventDetailApi(ApiView):
    permission_classes = [HasScope]
    required_scope = Scope.LOGS_READ

    class OutputSerializer(LogEventOutputSerializer):
        findings = serializers.SerializerMethodField()

        def get_findings(self, event) -> list[dict]:
            return [
                {"info_type": f.info_type, "count": f.count, "likelihood": f.likelihood}
                for f in event.findings.all()
            ]

    @extend_schema(operation_id="logs_retrieve", responses={200: OutputSerializer} | errors(401, 403, 404))
    def get(self, request: Request, event_id: int) -> Response:
        event = log_event_get(user=request.user, event_id=event_id)
        if event is None:
            raise NotFound("No such log event.")
        return Response(self.OutputSerializer(event).data)


class _AnyAccept(BaseContentNegotiation):
    """OTLP exporters may ask for `Accept: application/x-protobuf`: the answer's encoding follows the
    request's Content-Type (the OTLP rule), never the Accept header, so it is not negotiated."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


_OTLP_JSON_REQUEST = inline_serializer(
    "ExportTraceService", {"resourceSpans": serializers.ListField(child=serializers.DictField())}
)
_OTLP_JSON_RESPONSE = inline_serializer(
    "ExportTraceServiceResponse",
    {
        "partialSuccess": inline_serializer(
            "ExportTracePartialSuccess",
            {"rejectedSpans": serializers.CharField(), "errorMessage": serializers.CharField()},
            required=False,
        )
    },
)
_OTLP_STATUS = inline_serializer(
    "OtlpStatus",
    {
        "code": serializers.IntegerField(help_text="The gRPC status code."),
        "message": serializers.CharField(),
        "details": serializers.ListField(
            child=serializers.DictField(),
            help_text="One google.rpc.ErrorInfo: `reason` is the console's error code, domain `atalaya`.",
        ),
    },
)


class OtlpTracesApi(ApiView):
    """OpenTelemetry traces over OTLP/HTTP (protobuf or JSON, gzip or not), with a team token that has
    the `logs:write` scope. Spans that follow the GenAI semantic conventions and name a model become log
    events of the token's team, scanned and redacted like `POST /api/v1/logs/batch`; other spans are
    ignored. The answer is an `ExportTraceServiceResponse` in the request's encoding, with
    `partial_success` counting the spans rejected and why; a refused request gets a `google.rpc.Status`."""

    authentication_classes = [BearerTokenAuthentication]  # token only: no session, so no CSRF to check
    permission_classes = [HasScope]
    required_scope = Scope.LOGS_WRITE
    parser_classes: list = []
    content_negotiation_class = _AnyAccept

    def _encoding(self) -> otlp.Encoding:
        content_type = self.request.META.get("CONTENT_TYPE", "") if self.request else ""
        return "protobuf" if content_type.split(";")[0].strip().lower() == otlp.PROTOBUF else "json"

    def handle_exception(self, exc: Exception) -> HttpResponse:
        """Every refusal in the API's terms (status, code, message, Retry-After), sent as OTLP asks."""
        response = super().handle_exception(exc)
        error = (response.data or {}).get("error", {})
        encoding = self._encoding()
        body = otlp.status_encode(
            http_status=response.status_code,
            code=str(error.get("code", "error")),
            message=str(error.get("message", "")),
            details=error.get("details") or {},
            encoding=encoding,
        )
        answer = HttpResponse(body, status=response.status_code, content_type=_media(encoding))
        for header in ("Retry-After", "WWW-Authenticate"):
            if header in response:
                answer[header] = response[header]
        return answer

    @extend_schema(
        operation_id="otlp_traces_export",
        tags=["opentelemetry"],
        request={otlp.PROTOBUF: OpenApiTypes.BINARY, otlp.JSON: _OTLP_JSON_REQUEST},
        responses={(200, otlp.PROTOBUF): OpenApiTypes.BINARY, (200, otlp.JSON): _OTLP_JSON_RESPONSE}
        | {
            (status, media): (OpenApiTypes.BINARY if media == otlp.PROTOBUF else _OTLP_STATUS)
            for status in (400, 401, 403, 413, 415, 429)
            for media in (otlp.PROTOBUF, otlp.JSON)
        },
    )
    def post(self, request: Request) -> HttpResponse:
        encoding = _checked(otlp.encoding_of, request.META.get("CONTENT_TYPE", ""))
        body = _otlp_body(request)
        export = _checked(otlp.request_decode, body, encoding)
        mapped = otlp.events_from_request(export)
        team = request.user.active_token.team
        result = log_events_ingest(actor=request.user, team=team, events=mapped.events)
        otlp_spans_received(
            accepted=result.accepted,
            duplicate=result.duplicate,
            rejected=len(mapped.rejected),
            ignored=mapped.ignored,
        )
        answer = otlp.response_encode(
            rejected=len(mapped.rejected), message=mapped.rejection_message(), encoding=encoding
        )
        return HttpResponse(answer, status=200, content_type=_media(encoding))


class UnsupportedMediaType(ApplicationError):
    status_code = 415
    default_code = "unsupported_media_type"


def _media(encoding: otlp.Encoding) -> str:
    return otlp.PROTOBUF if encoding == "protobuf" else otlp.JSON


def _checked(function, *args, **kwargs):
    """Call one of apps.logs.otlp's decoders, its refusals as the API's errors."""
    try:
        return function(*args, **kwargs)
    except otlp.UnsupportedMedia as exc:
        raise UnsupportedMediaType(str(exc)) from None
    except otlp.MalformedRequest as exc:
        raise ApplicationError(str(exc), code="malformed_request") from None


def _otlp_body(request: Request) -> bytes:
    """The body, uncompressed; 413 past LOG_BATCH_MAX_BYTES as sent or once inflated."""
    limit = settings.LOG_BATCH_MAX_BYTES
    too_large = PayloadTooLarge(
        f"The export is larger than {limit // (1024 * 1024)} MB: export fewer spans at a time"
        " (OTEL_BSP_MAX_EXPORT_BATCH_SIZE).",
        details={"limit_bytes": limit},
    )
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        raise too_large
    body = request._request.read(limit + 1)
    if len(body) > limit:
        raise too_large
    try:
        return _checked(
            otlp.body_decompress, body, request.META.get("HTTP_CONTENT_ENCODING", ""), limit=limit
        )
    except OverflowError:
        raise too_large from None
