"""Contract tests of the Vertex AI Gemini provider: the real google-cloud-aiplatform gapic client
(`aiplatform_v1.PredictionServiceClient`), built as production builds it (`build_provider("vertex")` from
the VERTEX_* settings), against the in-repo gRPC fake over TLS (tests/contract/vertex_fake.py)."""

import time

import grpc
import pytest

from apps.evaluation.providers import (
    ModelRequest,
    NotConfigured,
    ProviderError,
    build_provider,
    get_provider,
    run_requests,
)
from apps.evaluation.providers.vertex import VertexGeminiProvider
from tests.contract.vertex_fake import embedding_for

MODEL_PATH = "projects/atalaya-test/locations/us-central1/publishers/google/models/gemini-2.5-flash"
MESSAGES = [
    {"role": "system", "content": "You answer support questions briefly."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi, how can I help?"},
    {"role": "user", "content": "How do I reset my password?"},
]


@pytest.fixture
def gemini(vertex_settings):
    provider = build_provider("vertex", embedding_model="gemini-embedding-001")
    assert isinstance(provider, VertexGeminiProvider)
    yield provider
    provider.close()


def test_generate_content_sends_the_conversation_and_reads_text_and_usage(gemini, vertex_fake):
    vertex_fake.generate_answers["How do I reset my password?"] = "Open Settings, then Reset password."
    vertex_fake.thoughts_tokens = 12

    response = gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, {}))

    assert response.text == "Open Settings, then Reset password."
    assert response.tokens_in == 6 + 2 + 5 + 5  # every word of the system instruction and contents
    assert response.tokens_out == 5 + 12  # candidates plus thinking tokens (billed as output)
    assert response.model == "gemini-2.5-flash"
    assert response.latency_ms >= 0
    [sent] = vertex_fake.requests("GenerateContent")
    assert sent.model == MODEL_PATH
    assert [p.text for p in sent.system_instruction.parts] == ["You answer support questions briefly."]
    assert [(c.role, c.parts[0].text) for c in sent.contents] == [
        ("user", "Hello there"),
        ("model", "Hi, how can I help?"),
        ("user", "How do I reset my password?"),
    ]


def test_parameters_go_to_the_generation_config(gemini, vertex_fake):
    parameters = {"temperature": 0.3, "max_tokens": 2, "top_p": 0.8, "top_k": 20, "stop": ["END"], "seed": 11}

    response = gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, parameters))

    [sent] = vertex_fake.requests("GenerateContent")
    config = sent.generation_config
    assert config.temperature == pytest.approx(0.3)
    assert config.max_output_tokens == 2
    assert config.top_p == pytest.approx(0.8)
    assert config.top_k == 20
    assert list(config.stop_sequences) == ["END"]
    assert config.seed == 11
    assert response.text == "echo: How"  # cut to max_output_tokens by the model


def test_a_full_resource_name_is_used_as_it_is(gemini, vertex_fake):
    gemini.generate(ModelRequest(MODEL_PATH, MESSAGES, {}))

    assert vertex_fake.requests("GenerateContent")[0].model == MODEL_PATH


def test_an_unknown_model_is_refused_with_vertexs_message(gemini):
    with pytest.raises(ProviderError, match=r"NOT_FOUND: Publisher Model `.*gemini-9` not found") as caught:
        gemini.generate(ModelRequest("gemini-9", MESSAGES, {}))

    assert caught.value.retryable is False
    assert caught.value.status == 404


def test_an_invalid_parameter_value_is_not_retryable(gemini):
    with pytest.raises(ProviderError, match=r"INVALID_ARGUMENT: .*temperature value of 5") as caught:
        gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, {"temperature": 5}))

    assert caught.value.retryable is False and caught.value.status == 400


def test_only_system_messages_are_refused_before_the_call(gemini, vertex_fake):
    with pytest.raises(ProviderError, match="at least one user message"):
        gemini.generate(ModelRequest("gemini-2.5-flash", [{"role": "system", "content": "x"}], {}))

    assert vertex_fake.count("GenerateContent") == 0


@pytest.mark.parametrize("code", ["UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL"])
def test_transient_codes_are_retryable(gemini, vertex_fake, code):
    vertex_fake.fail_next(1, grpc.StatusCode[code], method="GenerateContent")

    with pytest.raises(ProviderError, match=f"Vertex AI answered {code}") as caught:
        gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, {}))

    assert caught.value.retryable is True
    assert vertex_fake.count("GenerateContent") == 1  # no client-side retry


@pytest.mark.parametrize("code", ["PERMISSION_DENIED", "UNAUTHENTICATED", "INVALID_ARGUMENT"])
def test_refusals_are_not_retryable(gemini, vertex_fake, code):
    vertex_fake.fail_next(1, grpc.StatusCode[code], method="GenerateContent")

    with pytest.raises(ProviderError) as caught:
        gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, {}))

    assert caught.value.retryable is False


def test_resource_exhausted_carries_vertexs_retry_delay(gemini, vertex_fake):
    vertex_fake.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED, method="GenerateContent", retry_delay=1.5)

    with pytest.raises(ProviderError, match="Resource exhausted") as caught:
        gemini.generate(ModelRequest("gemini-2.5-flash", MESSAGES, {}))

    assert caught.value.retryable is True
    assert caught.value.retry_after == 1.5
    assert caught.value.status == 429


def test_the_executor_retries_vertex_and_waits_its_retry_delay(gemini, vertex_fake):
    vertex_fake.fail_next(1, grpc.StatusCode.UNAVAILABLE, method="GenerateContent")
    vertex_fake.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED, method="GenerateContent", retry_delay=0.4)
    started = time.monotonic()

    [outcome] = run_requests(
        gemini,
        [ModelRequest("gemini-2.5-flash", MESSAGES, {})],
        max_attempts=3,
        rate_per_second=0,
        backoff_base=0.01,
    )

    assert outcome.ok and outcome.attempts == 3
    assert outcome.response.text == "echo: How do I reset my password?"
    assert time.monotonic() - started >= 0.4
    assert [c.status for c in vertex_fake.calls] == ["UNAVAILABLE", "RESOURCE_EXHAUSTED", "OK"]


def test_embeddings_one_vector_per_text(gemini, vertex_fake):
    vectors = gemini.embed(["first text", "second"])

    assert vectors == [pytest.approx(embedding_for("first text")), pytest.approx(embedding_for("second"))]
    sent = vertex_fake.requests("EmbedContent")
    assert [r.model for r in sent] == [
        "projects/atalaya-test/locations/us-central1/publishers/google/models/gemini-embedding-001"
    ] * 2


def test_embeddings_without_an_embedding_model_say_so(vertex_settings, vertex_fake):
    provider = get_provider("vertex")
    try:
        with pytest.raises(NotConfigured, match="EVALUATION_VERTEX_EMBEDDING_MODEL"):
            provider.embed(["text"])
        assert vertex_fake.count("EmbedContent") == 0
    finally:
        provider.close()
        get_provider.cache_clear()


def test_without_a_project_the_provider_is_not_configured(settings):
    settings.VERTEX_PROJECT = ""
    settings.GOOGLE_CLOUD_PROJECT = ""

    with pytest.raises(NotConfigured, match="VERTEX_PROJECT"):
        build_provider("vertex")
