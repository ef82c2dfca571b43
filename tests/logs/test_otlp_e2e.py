"""End to end: an application instrumented with the real OpenTelemetry SDK exports to a running console
with the OTLP/HTTP exporter, configured as README.md says (environment variables); what is stored is
scanned and redacted like any other log event."""

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from apps.logs.models import EventState, LogEvent
from apps.logs.services import log_events_scan
from tests.factories import make_token
from tests.logs.otlp import GENAI, one_chat, otlp_json


@pytest.fixture
def token(world):
    return make_token(world.eng, world.support, "logs:write")


@pytest.fixture
def exporter_env(live_server, token, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live_server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer%20{token}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")


def the_stored_event(scanner):
    row = LogEvent.objects.get()
    assert log_events_scan(event_ids=[row.pk])["stored"] == 1
    row.refresh_from_db()
    assert row.state == EventState.STORED
    return row


def test_the_sdk_exporter_sends_genai_spans_that_are_stored_redacted(exporter_env, world, scanner):
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # everything from the environment
    tracer = provider.get_tracer("support-bot")
    with (
        tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER),
        tracer.start_as_current_span("chat gemini-2.5-flash", kind=SpanKind.CLIENT, attributes=GENAI),
    ):
        pass
    assert provider.force_flush(timeout_millis=20_000)
    provider.shutdown()

    row = the_stored_event(scanner)  # one event: the HTTP span was ignored
    assert (row.team, row.app, row.model, row.prompt, row.prompt_version) == (
        world.support,
        "support-bot",
        "gemini-2.5-flash",
        "support-reply",
        3,
    )
    assert (row.tokens_in, row.tokens_out) == (812, 95)
    assert row.input == [
        {"role": "system", "content": "Be kind."},
        {"role": "user", "content": "I am [EMAIL_ADDRESS], my order is late"},
    ]
    assert row.output == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
    assert row.has_pii and row.pii_types == ["EMAIL_ADDRESS"]
    assert row.metadata["attributes"]["gen_ai.response.model"] == "gemini-2.5-flash-001"
    assert row.metadata["span"]["parent_span_id"]  # the HTTP span's child


def test_an_exporter_retry_is_stored_once(exporter_env):
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with provider.get_tracer("t").start_as_current_span("chat", attributes=GENAI):
        pass
    exporter = OTLPSpanExporter()
    finished = spans.get_finished_spans()
    assert exporter.export(finished) == SpanExportResult.SUCCESS
    assert exporter.export(finished) == SpanExportResult.SUCCESS  # as a retry after a lost answer
    exporter.shutdown()
    assert LogEvent.objects.count() == 1


def test_a_wrong_token_fails_the_export(live_server, world, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", live_server.url)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer%20wrong")
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with provider.get_tracer("t").start_as_current_span("chat", attributes=GENAI):
        pass
    assert OTLPSpanExporter().export(spans.get_finished_spans()) == SpanExportResult.FAILURE  # 401: no retry
    assert not LogEvent.objects.exists()


def test_otlp_json_over_http_is_stored_redacted(live_server, token, scanner):
    response = httpx.post(
        f"{live_server.url}/v1/traces",
        content=otlp_json(one_chat(GENAI, error="quota exceeded for ana.garcia@example.com")),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        timeout=20,
    )
    assert response.status_code == 200, response.text
    assert response.json() == {}
    row = the_stored_event(scanner)
    assert (row.status, row.error) == ("error", "quota exceeded for [EMAIL_ADDRESS]")
    assert row.input[1] == {"role": "user", "content": "I am [EMAIL_ADDRESS], my order is late"}
    assert row.output == "Sorry Ana, we will write to [EMAIL_ADDRESS] today."
