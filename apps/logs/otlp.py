"""OpenTelemetry ingestion: OTLP/HTTP trace exports (`POST /v1/traces`) turned into log events.

The wire side: the body is an `ExportTraceServiceRequest` in protobuf (`application/x-protobuf`) or in the
OTLP JSON mapping (`application/json`: trace and span ids in hex, not base64; enums as integers), gzip- or
deflate-compressed or not. The answer is an `ExportTraceServiceResponse` in the request's encoding; a
refused request is answered with a `google.rpc.Status` (its `ErrorInfo` detail carries the console's
error code), as the OTLP specification asks.

The mapping: a span that names a model (`gen_ai.request.model` or `gen_ai.response.model`) is a model
call and becomes one log event; any other span (HTTP, database, a GenAI tool or agent span with no
model) is ignored and counted. A model-call span whose values cannot make a valid event is rejected
alone, with its reason (OTLP `partial_success`). Content is read from whichever convention the
instrumentation used, newest first: the `gen_ai.input.messages` / `gen_ai.output.messages` attributes
(and `gen_ai.system_instructions`), the older indexed `gen_ai.prompt.{i}.*` / `gen_ai.completion.{i}.*`
attributes (or whole `gen_ai.prompt` / `gen_ai.completion` attributes), then the span events (`gen_ai.content.prompt` / `gen_ai.content.completion`, and the
per-message `gen_ai.{system,user,assistant,tool}.message` and `gen_ai.choice`). Every attribute that
is not mapped to a field (span, resource and scope) is kept in the event's metadata, so it is scanned
and redacted like the rest. The request id is derived from the trace and span ids: an exporter's
retry is a duplicate, never a second event.
"""

import base64
import json
import math
import re
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from apps.logs.schemas import METADATA_MAX_DEPTH, LogEventIn, metadata_too_deep, texts_too_large

Encoding = Literal["protobuf", "json"]
PROTOBUF = "application/x-protobuf"
JSON = "application/json"

REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
INPUT_TOKENS = ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens")
OUTPUT_TOKENS = ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens")
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
PROMPT = "gen_ai.prompt"  # the older gen_ai.content.prompt / .completion events' attributes
COMPLETION = "gen_ai.completion"
PROMPT_NAME = ("atalaya.prompt.name", "gen_ai.prompt.name")
PROMPT_VERSION = "atalaya.prompt.version"
END_USER = ("user.id", "enduser.id")
SERVICE_NAME = "service.name"
_INDEXED = re.compile(r"^gen_ai\.(prompt|completion)\.(\d+)\.(role|content)$")
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CONTENT_EVENTS = {"gen_ai.content.prompt", "gen_ai.content.completion", "gen_ai.choice", *_MESSAGE_EVENTS}
_SPAN_KINDS = {value: name.removeprefix("SPAN_KIND_") for name, value in Span.SpanKind.items()}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MalformedRequest(ValueError):
    """The body is not an ExportTraceServiceRequest in the encoding it claims (400)."""


class UnsupportedMedia(ValueError):
    """A content type or content encoding this endpoint does not speak (415)."""


class SpanRejected(ValueError):
    pass


# The wire


def encoding_of(content_type: str) -> Encoding:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == PROTOBUF:
        return "protobuf"
    if media == JSON:
        return "json"
    raise UnsupportedMedia(
        f"Content-Type {media or '(none)'!r} is not supported: send {PROTOBUF} or {JSON} (OTLP/HTTP)."
    )


def body_decompress(body: bytes, content_encoding: str, *, limit: int) -> bytes:
    """The body as sent, uncompressed; MalformedRequest if it does not inflate, and OverflowError past
    `limit` bytes once inflated (a small compressed body can expand a thousandfold)."""
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMedia(f"Content-Encoding {encoding!r} is not supported: send gzip, deflate or none.")
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib header, detected
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise MalformedRequest(f"The body is not valid {encoding} data: {exc}.") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise OverflowError(len(data))
    if not inflater.eof:
        raise MalformedRequest(f"The {encoding} body is truncated.")
    return data


def _hex_to_base64(value: Any, name: str) -> Any:
    if not isinstance(value, str):
        return value  # ParseDict names the wrong type
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise MalformedRequest(f"{name} {value[:40]!r} is not hexadecimal (OTLP JSON ids are hex).") from None
    return base64.b64encode(raw).decode()


def _ids_from_hex(data: Any) -> None:
    """OTLP JSON writes trace and span ids in hex where the protobuf JSON mapping expects base64."""
    for resource_spans in _list(data, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                for owner in [span, *_list(span, "links")]:
                    if not isinstance(owner, dict):
                        continue
                    for key in ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"):
                        if key in owner:
                            owner[key] = _hex_to_base64(owner[key], key)


def _list(owner: Any, *keys: str) -> list:
    if not isinstance(owner, dict):
        return []
    for key in keys:
        value = owner.get(key)
        if isinstance(value, list):
            return value
    return []


def request_decode(body: bytes, encoding: Encoding) -> ExportTraceServiceRequest:
    export = ExportTraceServiceRequest()
    if encoding == "protobuf":
        try:
            export.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise MalformedRequest(
                f"The body is not an ExportTraceServiceRequest in protobuf: {exc}."
            ) from None
        return export
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedRequest(f"Malformed JSON: {exc}.") from None
    if not isinstance(data, dict):
        raise MalformedRequest('The body must be an ExportTraceServiceRequest: {"resourceSpans": [...]}.')
    _ids_from_hex(data)
    try:
        json_format.ParseDict(data, export, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise MalformedRequest(f"The body is not an ExportTraceServiceRequest: {exc}") from None
    return export


def _encode(message: Message, encoding: Encoding) -> bytes:
    if encoding == "protobuf":
        return message.SerializeToString()
    return json_format.MessageToJson(message, indent=None).encode()


def response_encode(*, rejected: int, message: str, encoding: Encoding) -> bytes:
    """An ExportTraceServiceResponse: `partial_success` only when spans were rejected (the OTLP rule:
    left unset on a full success)."""
    response = ExportTraceServiceResponse()
    if rejected:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return _encode(response, encoding)


_GRPC_CODES = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    405: code_pb2.UNIMPLEMENTED,
    413: code_pb2.RESOURCE_EXHAUSTED,
    415: code_pb2.INVALID_ARGUMENT,
    429: code_pb2.RESOURCE_EXHAUSTED,
    503: code_pb2.UNAVAILABLE,
}


def status_encode(
    *, http_status: int, code: str, message: str, details: Mapping[str, Any], encoding: Encoding
) -> bytes:
    """A refusal as OTLP/HTTP answers one: a `google.rpc.Status` with the message, and the console's
    error code and details in an `ErrorInfo` (domain `atalaya`)."""
    status = status_pb2.Status(code=_GRPC_CODES.get(http_status, code_pb2.UNKNOWN), message=message)
    info = error_details_pb2.ErrorInfo(reason=code, domain="atalaya")
    for key, value in details.items():
        info.metadata[str(key)] = value if isinstance(value, str) else json.dumps(value, default=str)
    status.details.add().Pack(info)
    return _encode(status, encoding)


# The mapping


@dataclass
class Rejection:
    index: int  # the span's position in the request
    request_id: str
    message: str


@dataclass
class Mapped:
    events: list[tuple[int, LogEventIn]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    ignored: int = 0
    spans: int = 0

    def rejection_message(self, limit: int = 5) -> str:
        if not self.rejected:
            return ""
        noun = "span was" if len(self.rejected) == 1 else "spans were"
        reasons = "; ".join(f"span {r.request_id}: {r.message}" for r in self.rejected[:limit])
        more = f"; and {len(self.rejected) - limit} more" if len(self.rejected) > limit else ""
        return f"{len(self.rejected)} {noun} rejected: {reasons}{more}."


def events_from_request(export: ExportTraceServiceRequest) -> Mapped:
    mapped = Mapped()
    for resource_spans in export.resource_spans:
        resource = attributes_of(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": _clean(scope_spans.scope.name), "version": _clean(scope_spans.scope.version)}
            for span in scope_spans.spans:
                index = mapped.spans
                mapped.spans += 1
                request_id = request_id_of(span)
                try:
                    event = event_from_span(span, resource=resource, scope=scope)
                except SpanRejected as exc:
                    mapped.rejected.append(Rejection(index, request_id, str(exc)))
                    continue
                if event is None:
                    mapped.ignored += 1
                else:
                    mapped.events.append((index, event))
    return mapped


def request_id_of(span: Span) -> str:
    """`otel-<trace id>-<span id>` in hex: the same span sent again is the same event."""
    return f"otel-{span.trace_id.hex()}-{span.span_id.hex()}"


def value_of(value: AnyValue) -> Any:
    """An OTLP AnyValue as JSON-safe Python (bytes in base64, non-finite floats as text)."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return _clean(value.string_value)
    if kind == "bool_value":
        return value.bool_value
    if kind == "int_value":
        return value.int_value
    if kind == "double_value":
        number = value.double_value
        return number if math.isfinite(number) else str(number)
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes_of(value.kvlist_value.values)
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return None


def _clean(text: str) -> str:
    """Protobuf strings may hold NUL characters, which PostgreSQL cannot store in text or JSON: each
    becomes U+FFFD (the replacement character)."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def attributes_of(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {_clean(pair.key): value_of(pair.value) for pair in pairs}


def event_from_span(span: Span, *, resource: dict[str, Any], scope: dict[str, str]) -> LogEventIn | None:
    """The log event of a model-call span; None for a span that names no model (ignored). Raises
    SpanRejected with the reason when the span's values cannot make a valid event."""
    attributes = attributes_of(span.attributes)
    model_key = next((k for k in (REQUEST_MODEL, RESPONSE_MODEL) if _text(attributes.get(k))), None)
    if model_key is None:
        return None
    if len(span.trace_id) != 16 or len(span.span_id) != 8:
        raise SpanRejected("trace_id must be 16 bytes and span_id 8 bytes")
    if not span.start_time_unix_nano:
        raise SpanRejected("the span has no start time")
    used = {model_key}
    events = [(_clean(e.name), attributes_of(e.attributes)) for e in span.events]
    input_messages = _input_of(attributes, events, used)
    output = _output_of(attributes, events, used)
    error = None
    status = "ok"
    if span.status.code == Status.STATUS_CODE_ERROR:
        status = "error"
        error = _clean(span.status.message) or _text(attributes.get("error.type")) or "error"
    started_at = _time(span.start_time_unix_nano)
    ended_at = _time(span.end_time_unix_nano) if span.end_time_unix_nano else None
    if ended_at is not None and ended_at < started_at:
        raise SpanRejected("the span ends before it starts")
    values = {
        "request_id": request_id_of(span),
        "started_at": started_at,
        "ended_at": ended_at,
        "model": str(attributes[model_key]),
        "input": input_messages,
        "output": output,
        "tokens_in": _whole(attributes, INPUT_TOKENS, used),
        "tokens_out": _whole(attributes, OUTPUT_TOKENS, used),
        "status": status,
        "error": error,
        "app": (_text(resource.get(SERVICE_NAME)) or "")[:100],
        "prompt": _first_text(attributes, PROMPT_NAME, used) or "",
        "prompt_version": _whole(attributes, (PROMPT_VERSION,), used),
        "end_user": (_first_text(attributes, END_USER, used) or "")[:300] or None,
        "metadata": _metadata(span, attributes, used, events, resource, scope),
    }
    try:
        event = msgspec.convert(values, LogEventIn)
    except msgspec.ValidationError as exc:
        raise SpanRejected(_field_message(str(exc))) from None
    if texts_too_large(event):
        raise SpanRejected("a prompt, completion or error text is over 1 MB")
    if metadata_too_deep(event.metadata):
        raise SpanRejected(f"attributes nest more than {METADATA_MAX_DEPTH} levels deep")
    return event


_FIELD_SOURCES = {
    "model": "gen_ai.request.model",
    "tokens_in": "gen_ai.usage.input_tokens",
    "tokens_out": "gen_ai.usage.output_tokens",
    "prompt": "atalaya.prompt.name",
    "prompt_version": "atalaya.prompt.version",
}


def _field_message(message: str) -> str:
    """msgspec names the event's field (`$.tokens_in`): name the attribute the sender set instead."""
    for name, source in _FIELD_SOURCES.items():
        message = message.replace(f"`$.{name}`", source)
    return message


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _text(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _first_text(attributes: dict[str, Any], keys: Iterable[str], used: set[str]) -> str | None:
    for key in keys:
        text = _text(attributes.get(key))
        if text is not None:
            used.add(key)
            return text
    return None


def _whole(attributes: dict[str, Any], keys: Iterable[str], used: set[str]) -> int | None:
    """The first of `keys` set, as a whole number (an int, or an integral float or string)."""
    for key in keys:
        if key not in attributes:
            continue
        value = attributes[key]
        used.add(key)
        if isinstance(value, bool):
            raise SpanRejected(f"{key} is not a whole number: {_short(value)}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,19}\s*", value):
            return int(value)
        raise SpanRejected(f"{key} is not a whole number: {_short(value)}")
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}…"


# Content: the conventions, newest first


def _loads(value: Any) -> Any:
    """An attribute that holds JSON (a string), or structured already (a complex attribute)."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to be messages: kept as text
            return value
    return value


def _content_text(value: Any) -> str:
    """The text of a message's content: a string, or a list of parts (GenAI `parts`, or OpenAI-style
    `{"type": "text", "text": ...}`); other parts (tool calls, responses) as compact JSON, so their
    text is scanned too; binary parts (`blob`) without their data."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_part_text(part) for part in value) if t)
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _part_text(part: Any) -> str:
    if isinstance(part, str):
        return part
    if isinstance(part, dict):
        if part.get("type") in (None, "text"):
            for key in ("content", "text"):
                if isinstance(part.get(key), str):
                    return part[key]
        if part.get("type") == "blob":
            part = {k: v for k, v in part.items() if k != "content"}
    return json.dumps(part, ensure_ascii=False, sort_keys=True)


def _message(value: Any, default_role: str) -> dict[str, str]:
    role: Any = None
    if isinstance(value, dict):
        role = value.get("role")
        text = _content_text(value["parts"] if "parts" in value else value.get("content"))
        if value.get("tool_calls"):  # OpenAI-style calls beside the content
            text = "\n".join(t for t in (text, _content_text(value["tool_calls"])) if t)
    else:
        text = _content_text(value)
    role = role if isinstance(role, str) and role else default_role
    return {"role": role[:40], "content": text}


def _messages(value: Any, default_role: str = "user") -> list[dict[str, str]]:
    value = _loads(value)
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        return [_message(value, default_role)] if value not in (None, "") else []
    return [_message(item, default_role) for item in value]


def _indexed(attributes: dict[str, Any], kind: str, used: set[str]) -> list[dict[str, str]]:
    """`gen_ai.prompt.{i}.role` / `.content` (or completion), in index order."""
    found: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        match = _INDEXED.match(key)
        if match and match.group(1) == kind:
            found.setdefault(int(match.group(2)), {})[match.group(3)] = value
            used.add(key)
    default = "user" if kind == "prompt" else "assistant"
    return [_message(found[i], default) for i in sorted(found)]


def _event_body(attributes: dict[str, Any]) -> dict[str, Any]:
    """A GenAI event's body, as span events carry it: the attributes themselves, or a JSON body in
    `gen_ai.event.content` (some instrumentations)."""
    if "gen_ai.event.content" in attributes:
        body = _loads(attributes["gen_ai.event.content"])
        if isinstance(body, dict):
            return body
        return {"content": body}
    return attributes


def _input_of(
    attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]], used: set[str]
) -> list[dict[str, str]]:
    if INPUT_MESSAGES in attributes or SYSTEM_INSTRUCTIONS in attributes:
        used.update({INPUT_MESSAGES, SYSTEM_INSTRUCTIONS} & attributes.keys())
        system = _loads(attributes.get(SYSTEM_INSTRUCTIONS))
        instructions = [{"role": "system", "content": _content_text(system)}] if system else []
        return instructions + _messages(attributes.get(INPUT_MESSAGES))
    indexed = _indexed(attributes, "prompt", used)
    if indexed:
        return indexed
    if _text(attributes.get(PROMPT)):  # the older convention's event attribute, set on the span itself
        used.add(PROMPT)
        return _messages(attributes[PROMPT])
    messages: list[dict[str, str]] = []
    for name, event_attributes in events:
        if name == "gen_ai.content.prompt":
            messages += _messages(event_attributes.get(PROMPT))
        elif name in _MESSAGE_EVENTS:
            messages.append(_message(_event_body(event_attributes), _MESSAGE_EVENTS[name]))
    return messages


def _output_of(
    attributes: dict[str, Any], events: list[tuple[str, dict[str, Any]]], used: set[str]
) -> str | None:
    if OUTPUT_MESSAGES in attributes:
        used.add(OUTPUT_MESSAGES)
        messages = _messages(attributes[OUTPUT_MESSAGES], "assistant")
    else:
        messages = _indexed(attributes, "completion", used)
    if not messages and _text(attributes.get(COMPLETION)):
        used.add(COMPLETION)
        messages = _messages(attributes[COMPLETION], "assistant")
    if not messages:
        for name, event_attributes in events:
            if name == "gen_ai.content.completion":
                messages += _messages(event_attributes.get(COMPLETION), "assistant")
            elif name == "gen_ai.choice":
                body = _event_body(event_attributes)
                message = _loads(body.get("message", body))
                messages.append(_message(message, "assistant"))
    if not messages:
        return None
    return "\n".join(m["content"] for m in messages)


def _metadata(
    span: Span,
    attributes: dict[str, Any],
    used: set[str],
    events: list[tuple[str, dict[str, Any]]],
    resource: dict[str, Any],
    scope: dict[str, str],
) -> dict[str, Any]:
    """What no field took, kept as sent: the span's other attributes, its identity, the resource, the
    instrumentation scope and its non-content events (an exception's message, say)."""
    metadata: dict[str, Any] = {
        "span": {
            "name": _clean(span.name),
            "kind": _SPAN_KINDS.get(span.kind, str(span.kind)),
            "trace_id": span.trace_id.hex(),
            "span_id": span.span_id.hex(),
            "parent_span_id": span.parent_span_id.hex(),
        },
        "attributes": {k: v for k, v in attributes.items() if k not in used},
        "resource": {k: v for k, v in resource.items() if k != SERVICE_NAME},  # the app
    }
    if scope.get("name"):
        metadata["scope"] = scope
    other = [{"name": name, "attributes": a} for name, a in events if name not in _CONTENT_EVENTS]
    if other:
        metadata["events"] = other
    return metadata
