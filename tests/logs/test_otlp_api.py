"""POST /v1/traces: the OTLP/HTTP endpoint, as an exporter calls it."""

import gzip

import pytest
from google.protobuf import json_format
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from prometheus_client import REGISTRY

from apps.logs.models import EventState, LogEvent
from apps.logs.services import log_events_scan
from tests.factories import make_token
from tests.logs.otlp import GENAI, chat, one_chat, otlp_json, record

URL = "/v1/traces"
PROTOBUF = "application/x-protobuf"


def send(client, export, *, encoding="protobuf", **headers):
    if encoding == "protobuf":
        return client.post(URL, data=export.SerializeToString(), content_type=PROTOBUF, **headers)
    return client.post(URL, data=otlp_json(export), content_type="application/json", **headers)


def status_of(response):
    """The google.rpc.Status of a refusal, and the console's error code in its ErrorInfo."""
    if response["Content-Type"] == PROTOBUF:
        status = status_pb2.Status.FromString(response.content)
    else:
        status = json_format.Parse(response.content, status_pb2.Status())
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return status, info.reason


def spans_counted(outcome):
    return REGISTRY.get_sample_value("atalaya_otlp_spans_received_total", {"outcome": outcome}) or 0


@pytest.fixture
def writer(world, api_as):
    return api_as(token=make_token(world.eng, world.support, "logs:write"))


def test_protobuf_export_is_staged_as_log_events(writer, world, enqueued, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = send(writer, one_chat(GENAI))
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == PROTOBUF
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    row = LogEvent.objects.get()
    assert (row.team, row.state, row.app, row.model) == (
        world.support,
        EventState.STAGED,
        "support-bot",
        "gemini-2.5-flash",
    )
    assert (row.prompt, row.prompt_version, row.tokens_in, row.tokens_out) == ("support-reply", 3, 812, 95)
    assert row.request_id.startswith("otel-")
    assert b"ana.garcia" not in bytes(row.staged_payload)  # sealed like a batch event
    assert enqueued == [("workers.logs.scan_events", ([row.pk],))]


def test_json_export_gets_a_json_answer(writer):
    response = send(writer, one_chat(GENAI), encoding="json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json() == {}
    assert LogEvent.objects.get().model == "gemini-2.5-flash"


def test_gzip_export(writer):
    body = gzip.compress(one_chat(GENAI).SerializeToString())
    response = writer.post(URL, data=body, content_type=PROTOBUF, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 200
    assert LogEvent.objects.count() == 1


def test_the_accept_header_does_not_matter(writer):
    response = send(writer, one_chat(GENAI), HTTP_ACCEPT=PROTOBUF)
    assert response.status_code == 200


def test_a_resent_export_is_stored_once(writer):
    export = one_chat(GENAI)
    duplicates = spans_counted("duplicate")
    assert send(writer, export).status_code == 200
    assert send(writer, export).status_code == 200
    assert LogEvent.objects.count() == 1
    assert spans_counted("duplicate") == duplicates + 1


def test_spans_without_genai_attributes_are_counted_not_stored(writer):
    def build(tracer):
        tracer.start_span("GET /orders", attributes={"http.request.method": "GET"}).end()
        tracer.start_span("SELECT orders", attributes={"db.system.name": "postgresql"}).end()

    ignored, accepted = spans_counted("ignored"), spans_counted("accepted")
    response = send(writer, record(build))
    assert response.status_code == 200
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")
    assert not LogEvent.objects.exists()
    assert (spans_counted("ignored"), spans_counted("accepted")) == (ignored + 2, accepted)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_rejected_spans_are_a_partial_success(writer, encoding):
    def build(tracer):
        for attributes in (GENAI | {"gen_ai.usage.input_tokens": "many"}, GENAI):
            span, end = chat(tracer, attributes)
            span.end(end_time=end)

    rejected = spans_counted("rejected")
    response = send(writer, record(build), encoding=encoding)
    assert response.status_code == 200
    if encoding == "protobuf":
        answer = ExportTraceServiceResponse.FromString(response.content)
    else:
        answer = json_format.Parse(response.content, ExportTraceServiceResponse())
    assert answer.partial_success.rejected_spans == 1
    assert "gen_ai.usage.input_tokens is not a whole number: 'many'" in answer.partial_success.error_message
    assert LogEvent.objects.count() == 1
    assert spans_counted("rejected") == rejected + 1


@pytest.mark.parametrize(
    "user, scopes, status, code",
    [
        (None, None, 401, "not_authenticated"),
        ("eng", ["logs:read"], 403, "missing_scope"),
        ("owner", ["logs:write"], 403, "permission_denied"),  # product owners do not send logs
        ("gov", ["all"], 403, "permission_denied"),
        ("ann1", ["all"], 403, "permission_denied"),
        ("admin", ["logs:write"], 200, None),
        ("eng", ["all"], 200, None),
    ],
)
def test_who_may_export(world, api_as, user, scopes, status, code):
    client = api_as(token=make_token(world.users[user], world.support, *scopes)) if user else api_as()
    response = send(client, one_chat(GENAI))
    assert response.status_code == status, response.content
    if code:
        assert status_of(response)[1] == code
        assert not LogEvent.objects.exists()
    else:
        assert LogEvent.objects.count() == 1


def test_a_browser_session_is_not_enough(world, api_as):
    response = send(api_as(world.eng), one_chat(GENAI))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert not LogEvent.objects.exists()


def test_an_unknown_token_is_401_in_the_otlp_error_format(db, api_as):
    response = send(api_as(token="nope"), one_chat(GENAI), encoding="json")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    status, code = status_of(response)
    assert (status.code, status.message, code) == (16, "Invalid token.", "authentication_failed")


@pytest.mark.parametrize(
    "body, content_type, headers, status, code, message",
    [
        (
            b"not a protobuf message",
            PROTOBUF,
            {},
            400,
            "malformed_request",
            "not an ExportTraceServiceRequest",
        ),
        (b"{nope", "application/json", {}, 400, "malformed_request", "Malformed JSON"),
        (
            b"\x1f\x8b garbage",
            PROTOBUF,
            {"HTTP_CONTENT_ENCODING": "gzip"},
            400,
            "malformed_request",
            "not valid gzip",
        ),
        (b"{}", "text/plain", {}, 415, "unsupported_media_type", "application/x-protobuf"),
        (
            b"",
            PROTOBUF,
            {"HTTP_CONTENT_ENCODING": "br"},
            415,
            "unsupported_media_type",
            "Content-Encoding 'br'",
        ),
    ],
)
def test_bad_bodies(writer, body, content_type, headers, status, code, message):
    response = writer.post(URL, data=body, content_type=content_type, **headers)
    assert response.status_code == status
    refusal, reason = status_of(response)
    assert reason == code and message in refusal.message
    assert not LogEvent.objects.exists()


def test_an_oversized_export_is_413(writer, settings):
    settings.LOG_BATCH_MAX_BYTES = 2000
    response = send(writer, one_chat(GENAI | {"gen_ai.output.messages": "x" * 3000}))
    assert response.status_code == 413
    refusal, reason = status_of(response)
    assert reason == "payload_too_large" and "OTEL_BSP_MAX_EXPORT_BATCH_SIZE" in refusal.message
    assert not LogEvent.objects.exists()


def test_a_body_that_inflates_past_the_limit_is_413(writer, settings):
    settings.LOG_BATCH_MAX_BYTES = 100_000
    bomb = gzip.compress(b"\n" * 1_000_000)  # about 1 KB that inflates to 1 MB
    response = writer.post(URL, data=bomb, content_type=PROTOBUF, HTTP_CONTENT_ENCODING="gzip")
    assert response.status_code == 413
    assert status_of(response)[1] == "payload_too_large"


def test_rate_limited_like_the_api(writer, settings):
    settings.API_WRITE_RATE_LIMIT = "1/min"
    assert send(writer, one_chat(GENAI)).status_code == 200
    response = send(writer, one_chat(GENAI))
    assert response.status_code == 429  # retryable for exporters, after Retry-After
    assert int(response["Retry-After"]) >= 1
    assert status_of(response)[1] == "rate_limited"
    assert LogEvent.objects.count() == 1


def test_nul_characters_are_stored_as_replacement_characters(writer, scanner):
    """PostgreSQL stores no NUL in text or JSON (this fails there without the replacement)."""
    export = one_chat(GENAI | {"gen_ai.request.model": "gemini\x00", "note": "a\x00b"}, error="bad\x00")
    assert send(writer, export).status_code == 200
    row = LogEvent.objects.get()
    assert log_events_scan(event_ids=[row.pk])["stored"] == 1
    row.refresh_from_db()
    assert (row.model, row.error, row.metadata["attributes"]["note"]) == (
        "gemini\ufffd",
        "bad\ufffd",
        "a\ufffdb",
    )
