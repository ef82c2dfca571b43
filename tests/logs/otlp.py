"""Spans made by the real OpenTelemetry SDK, encoded by its own OTLP encoder, for the OTLP tests."""

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime

from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Tracer

START = datetime(2026, 11, 21, 10, 0, 0, tzinfo=UTC)
START_NS = int(START.timestamp()) * 1_000_000_000


def record(build: Callable[[Tracer], None], service: str = "support-bot") -> ExportTraceServiceRequest:
    """The ExportTraceServiceRequest that an exporter would send for the spans `build` makes."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    build(provider.get_tracer("genai-instrumentation", "1.2.3"))
    provider.shutdown()
    return encode_spans(exporter.get_finished_spans())


def chat(tracer: Tracer, attributes: dict, *, name: str = "chat gemini-2.5-flash", events=(), ms: int = 1200):
    """One client span from START lasting `ms` milliseconds, with these attributes and events."""
    span = tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes, start_time=START_NS)
    for event_name, event_attributes in events:
        span.add_event(event_name, event_attributes, timestamp=START_NS + 1000)
    return span, START_NS + ms * 1_000_000


def one_chat(attributes: dict, *, events=(), error: str | None = None, ms: int = 1200, service="support-bot"):
    def build(tracer):
        span, end = chat(tracer, attributes, events=events, ms=ms)
        if error is not None:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)

    return record(build, service=service)


GENAI = {
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": "gcp.vertex_ai",
    "gen_ai.request.model": "gemini-2.5-flash",
    "gen_ai.response.model": "gemini-2.5-flash-001",
    "gen_ai.request.temperature": 0.2,
    "gen_ai.usage.input_tokens": 812,
    "gen_ai.usage.output_tokens": 95,
    "gen_ai.input.messages": json.dumps(
        [
            {
                "role": "user",
                "parts": [{"type": "text", "content": "I am ana.garcia@example.com, my order is late"}],
            }
        ]
    ),
    "gen_ai.output.messages": json.dumps(
        [
            {
                "role": "assistant",
                "parts": [
                    {"type": "text", "content": "Sorry Ana, we will write to ana.garcia@example.com today."}
                ],
                "finish_reason": "stop",
            }
        ]
    ),
    "gen_ai.system_instructions": json.dumps([{"type": "text", "content": "Be kind."}]),
    "atalaya.prompt.name": "support-reply",
    "atalaya.prompt.version": 3,
}


def otlp_json(export: ExportTraceServiceRequest) -> bytes:
    """The OTLP JSON encoding: the protobuf JSON mapping with enums as integers and ids in hex."""
    data = json_format.MessageToDict(export, use_integers_for_enums=True)
    for resource_spans in data.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for span in scope_spans.get("spans", []):
                for owner in [span, *span.get("links", [])]:
                    for key in ("traceId", "spanId", "parentSpanId"):
                        if key in owner:
                            owner[key] = base64.b64decode(owner[key]).hex()
    return json.dumps(data).encode()
