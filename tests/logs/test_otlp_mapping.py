"""The span → log event mapping (apps.logs.otlp), on spans made by the real OpenTelemetry SDK."""

import gzip
import json
import zlib
from datetime import timedelta

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from apps.logs import otlp
from tests.logs.otlp import GENAI, START, chat, one_chat, otlp_json, record


def only_event(export):
    mapped = otlp.events_from_request(export)
    assert (mapped.rejected, mapped.ignored, len(mapped.events)) == ([], 0, 1), mapped
    return mapped.events[0][1]


def test_current_conventions_make_one_event_with_everything_else_in_metadata():
    export = one_chat(GENAI | {"user.id": "u-123", "http.route": "/chat"})
    event = only_event(export)
    span = export.resource_spans[0].scope_spans[0].spans[0]
    assert event.request_id == f"otel-{span.trace_id.hex()}-{span.span_id.hex()}"
    assert (event.started_at, event.ended_at) == (START, START + timedelta(milliseconds=1200))
    assert (event.model, event.tokens_in, event.tokens_out) == ("gemini-2.5-flash", 812, 95)
    assert (event.app, event.prompt, event.prompt_version, event.end_user) == (
        "support-bot",
        "support-reply",
        3,
        "u-123",
    )
    assert [(m.role, m.content) for m in event.input] == [
        ("system", "Be kind."),
        ("user", "I am ana.garcia@example.com, my order is late"),
    ]
    assert event.output == "Sorry Ana, we will write to ana.garcia@example.com today."
    assert (event.status, event.error) == ("ok", None)
    # Not mapped to a field: kept as sent. Mapped: not repeated.
    assert event.metadata["attributes"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "gcp.vertex_ai",
        "gen_ai.response.model": "gemini-2.5-flash-001",
        "gen_ai.request.temperature": 0.2,
        "http.route": "/chat",
    }
    assert event.metadata["resource"]["deployment.environment"] == "prod"
    assert "service.name" not in event.metadata["resource"]
    assert event.metadata["scope"] == {"name": "genai-instrumentation", "version": "1.2.3"}
    assert event.metadata["span"] == {
        "name": "chat gemini-2.5-flash",
        "kind": "CLIENT",
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": "",
    }


def test_the_request_id_is_the_spans_identity():
    export = record(lambda t: [s.end(end_time=e) for s, e in (chat(t, GENAI), chat(t, GENAI))])
    ids = [e.request_id for _, e in otlp.events_from_request(export).events]
    assert len(set(ids)) == 2  # two spans, two events
    again = ExportTraceServiceRequest.FromString(export.SerializeToString())
    assert [e.request_id for _, e in otlp.events_from_request(again).events] == ids  # a resend: the same ids


def test_older_indexed_attributes_and_token_names():
    event = only_event(
        one_chat(
            {
                "gen_ai.system": "openai",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.prompt_tokens": 20,
                "gen_ai.usage.completion_tokens": 7,
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "And in Spanish?",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Translate.",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.content": "¿Y en español?",
                "gen_ai.completion.0.finish_reason": "stop",
            }
        )
    )
    assert event.model == "gpt-4o-2024-08-06"
    assert (event.tokens_in, event.tokens_out) == (20, 7)
    assert [(m.role, m.content) for m in event.input] == [
        ("system", "Translate."),
        ("user", "And in Spanish?"),
    ]
    assert event.output == "¿Y en español?"
    assert event.metadata["attributes"] == {
        "gen_ai.system": "openai",
        "gen_ai.completion.0.finish_reason": "stop",
    }


def test_content_events_of_the_older_conventions():
    prompt = json.dumps([{"role": "user", "content": "Where is my parcel? I am ana@example.com"}])
    event = only_event(
        one_chat(
            {"gen_ai.request.model": "gemini-2.5-pro"},
            events=[
                ("gen_ai.content.prompt", {"gen_ai.prompt": prompt}),
                ("gen_ai.content.completion", {"gen_ai.completion": "It left today."}),
                ("exception", {"exception.message": "retried once"}),
            ],
        )
    )
    assert [(m.role, m.content) for m in event.input] == [
        ("user", "Where is my parcel? I am ana@example.com")
    ]
    assert event.output == "It left today."
    assert event.metadata["events"] == [
        {"name": "exception", "attributes": {"exception.message": "retried once"}}
    ]


def test_per_message_events_and_choice():
    event = only_event(
        one_chat(
            {"gen_ai.request.model": "gemini-2.5-flash"},
            events=[
                ("gen_ai.system.message", {"gen_ai.system": "vertex_ai", "content": "Be brief."}),
                ("gen_ai.user.message", {"gen_ai.event.content": json.dumps({"content": "Hola"})}),
                (
                    "gen_ai.choice",
                    {"index": 0, "message": json.dumps({"role": "assistant", "content": "¡Hola!"})},
                ),
            ],
        )
    )
    assert [(m.role, m.content) for m in event.input] == [("system", "Be brief."), ("user", "Hola")]
    assert event.output == "¡Hola!"
    assert "events" not in event.metadata  # content events are the event's text, not metadata


def test_tool_calls_are_kept_as_text_and_blobs_without_their_data():
    messages = [
        {
            "role": "user",
            "parts": [
                {"type": "text", "content": "What is in this picture?"},
                {"type": "blob", "modality": "image", "mime_type": "image/png", "content": "iVBORw0KGgo="},
            ],
        },
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c1", "name": "lookup", "arguments": {"email": "a@b.es"}}],
        },
    ]
    event = only_event(one_chat({"gen_ai.request.model": "m", "gen_ai.input.messages": json.dumps(messages)}))
    assert (
        event.input[0].content
        == 'What is in this picture?\n{"mime_type": "image/png", "modality": "image", "type": "blob"}'
    )
    assert json.loads(event.input[1].content) == messages[1]["parts"][0]


def test_a_span_without_captured_content_still_counts_its_tokens():
    event = only_event(one_chat({"gen_ai.request.model": "gemini-2.5-flash", "gen_ai.usage.input_tokens": 5}))
    assert (event.input, event.output, event.tokens_in, event.tokens_out) == ([], None, 5, None)


def test_an_error_span_is_an_error_event():
    event = only_event(one_chat(GENAI, error="quota exceeded for ana@example.com"))
    assert (event.status, event.error) == ("error", "quota exceeded for ana@example.com")
    typed = only_event(one_chat(GENAI | {"error.type": "timeout"}, error=""))
    assert (typed.status, typed.error) == ("error", "timeout")


def test_spans_that_name_no_model_are_ignored():
    def build(tracer):
        tracer.start_span("GET /orders", attributes={"http.request.method": "GET"}).end()
        tracer.start_span("execute_tool lookup", attributes={"gen_ai.operation.name": "execute_tool"}).end()
        span, end = chat(tracer, GENAI)
        span.end(end_time=end)

    mapped = otlp.events_from_request(record(build))
    assert (mapped.spans, mapped.ignored, len(mapped.events), mapped.rejected) == (3, 2, 1, [])
    assert mapped.events[0][0] == 2  # its position in the request


@pytest.mark.parametrize(
    "attributes, reason",
    [
        ({"gen_ai.usage.input_tokens": "many"}, "gen_ai.usage.input_tokens is not a whole number: 'many'"),
        ({"gen_ai.usage.output_tokens": -3}, "gen_ai.usage.output_tokens"),
        ({"gen_ai.usage.input_tokens": "x" * 500}, "is not a whole number: '" + "x" * 56 + "…"),
        ({"atalaya.prompt.version": "v3"}, "atalaya.prompt.version is not a whole number: 'v3'"),
        ({"atalaya.prompt.version": 0}, "atalaya.prompt.version"),
        ({"gen_ai.output.messages": "x" * (1024 * 1024 + 1)}, "over 1 MB"),
        # beyond the database's integer
        ({"atalaya.prompt.version": "99999999999"}, "atalaya.prompt.version"),
    ],
)
def test_a_span_with_invalid_values_is_rejected_alone(attributes, reason):
    def build(tracer):
        for attrs in (GENAI | attributes, GENAI):
            span, end = chat(tracer, attrs)
            span.end(end_time=end)

    mapped = otlp.events_from_request(record(build))
    assert [index for index, _ in mapped.events] == [1]
    (rejection,) = mapped.rejected
    assert rejection.index == 0 and reason in rejection.message
    assert mapped.rejection_message().startswith(f"1 span was rejected: span {rejection.request_id}: ")


def test_integral_strings_and_floats_are_whole_numbers():
    event = only_event(
        one_chat(GENAI | {"gen_ai.usage.input_tokens": "812", "gen_ai.usage.output_tokens": 95.0})
    )
    assert (event.tokens_in, event.tokens_out) == (812, 95)


def test_any_value_becomes_json():
    value = AnyValue(
        kvlist_value=KeyValueList(
            values=[
                KeyValue(key="raw", value=AnyValue(bytes_value=b"\x00\x01")),
                KeyValue(
                    key="list",
                    value=AnyValue(
                        array_value=ArrayValue(values=[AnyValue(int_value=1), AnyValue(bool_value=True)])
                    ),
                ),
                KeyValue(key="nan", value=AnyValue(double_value=float("nan"))),
                KeyValue(key="empty", value=AnyValue()),
            ]
        )
    )
    assert otlp.value_of(value) == {"raw": "AAE=", "list": [1, True], "nan": "nan", "empty": None}


def test_otlp_json_is_read_with_hex_ids():
    export = one_chat(GENAI)
    assert otlp.request_decode(otlp_json(export), "json") == export


@pytest.mark.parametrize(
    "body, message",
    [
        (b"{nope", "Malformed JSON"),
        (b"[]", "must be an ExportTraceServiceRequest"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "not hexadecimal"),
        (b'{"resourceSpans": {"x": 1}}', "not an ExportTraceServiceRequest"),
        (
            b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]}',
            "not an ExportTraceServiceRequest",
        ),
        (b"[" * 100_000, "Malformed JSON"),
    ],
)
def test_malformed_json(body, message):
    with pytest.raises(otlp.MalformedRequest, match=message):
        otlp.request_decode(body, "json")


def test_malformed_protobuf():
    with pytest.raises(otlp.MalformedRequest, match="protobuf"):
        otlp.request_decode(b"not a protobuf message", "protobuf")


def test_decompression():
    body = one_chat(GENAI).SerializeToString()
    assert otlp.body_decompress(gzip.compress(body), "gzip", limit=10**6) == body
    assert otlp.body_decompress(zlib.compress(body), "deflate", limit=10**6) == body
    assert otlp.body_decompress(body, "", limit=10**6) == body
    with pytest.raises(OverflowError):
        otlp.body_decompress(gzip.compress(b"\0" * 2_000_000), "gzip", limit=10**6)
    with pytest.raises(otlp.MalformedRequest, match="not valid gzip"):
        otlp.body_decompress(b"plain", "gzip", limit=10**6)
    with pytest.raises(otlp.MalformedRequest, match="truncated"):
        otlp.body_decompress(gzip.compress(body)[:-20], "gzip", limit=10**6)
    with pytest.raises(otlp.UnsupportedMedia, match="br"):
        otlp.body_decompress(body, "br", limit=10**6)


def test_whole_prompt_and_completion_attributes_of_the_older_conventions():
    prompt = json.dumps([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    event = only_event(
        one_chat({"gen_ai.request.model": "m", "gen_ai.prompt": prompt, "gen_ai.completion": "Hello!"})
    )
    assert [(m.role, m.content) for m in event.input] == [("system", "Be brief."), ("user", "Hi")]
    assert event.output == "Hello!"
    assert event.metadata["attributes"] == {}


def test_a_plain_text_prompt_that_is_not_json_is_kept_as_the_users_message():
    event = only_event(one_chat({"gen_ai.request.model": "m", "gen_ai.prompt": "[not json: hello"}))
    assert [(m.role, m.content) for m in event.input] == [("user", "[not json: hello")]


def test_nul_characters_become_replacement_characters():
    export = one_chat(GENAI | {"gen_ai.request.model": "gemini\x00", "note\x00": "a\x00b"}, error="bad\x00")
    event = only_event(export)
    assert (event.model, event.error) == ("gemini\ufffd", "bad\ufffd")
    assert event.metadata["attributes"]["note\ufffd"] == "a\ufffdb"


def test_messages_nested_too_deeply_to_parse_are_kept_as_text_never_a_500():
    deep = "[" * 100_000 + "]" * 100_000
    event = only_event(one_chat(GENAI | {"gen_ai.input.messages": deep}))
    assert deep in str(event.metadata) or any(deep in m.content for m in event.input)
