"""The OpenAI-compatible provider through the real `openai` client against the in-repo fake server
(tests/evaluation/openai_fake.py): what it sends, what it reads back, and how refusals come out."""

import re

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.evaluation.providers import (
    ModelRequest,
    NotConfigured,
    ProviderError,
    build_provider,
    get_provider,
)
from apps.evaluation.providers.openai_compat import OpenAICompatibleProvider, retry_after_seconds
from tests.evaluation.openai_fake import vector_for

MESSAGES = [
    {"role": "system", "content": "You answer support questions briefly."},
    {"role": "user", "content": "How do I reset my password?"},
]


def test_generate_returns_the_answer_tokens_latency_and_model(openai_provider, openai_fake):
    openai_fake.answers["How do I reset my password?"] = "Open Settings and choose Reset password."
    openai_fake.latency_seconds = 0.05

    response = openai_provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert response.text == "Open Settings and choose Reset password."
    assert response.tokens_in == 6 + 5  # the fake counts words of every message
    assert response.tokens_out == 6
    assert 50 <= response.latency_ms < 2000
    assert response.model == "fake-llm"
    [sent] = openai_fake.bodies()
    assert sent["model"] == "fake-llm"
    assert sent["messages"] == MESSAGES


def test_parameters_are_mapped_to_the_openai_names(openai_provider, openai_fake):
    parameters = {
        "temperature": 0.2,
        "max_output_tokens": 3,
        "top_p": 0.9,
        "top_k": 40,
        "stop": "END",
        "seed": 7,
    }

    response = openai_provider.generate(ModelRequest("fake-llm", MESSAGES, parameters))

    [sent] = openai_fake.bodies()
    assert sent["temperature"] == 0.2
    assert sent["max_tokens"] == 3
    assert sent["top_p"] == 0.9
    assert sent["top_k"] == 40
    assert sent["stop"] == ["END"]
    assert sent["seed"] == 7
    assert "max_output_tokens" not in sent
    assert response.text == "echo: How do"  # cut to max_tokens words by the server
    assert response.tokens_out == 3


def test_max_tokens_and_stop_sequences_are_accepted_as_aliases(openai_provider, openai_fake):
    openai_provider.generate(
        ModelRequest("fake-llm", MESSAGES, {"max_tokens": 5, "stop_sequences": ["a", "b"]})
    )

    [sent] = openai_fake.bodies()
    assert sent["max_tokens"] == 5
    assert sent["stop"] == ["a", "b"]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ({"temprature": 0.2}, "unsupported parameter 'temprature'"),
        ({"temperature": "hot"}, "parameter 'temperature' must be a number"),
        ({"max_tokens": 2.5}, "parameter 'max_tokens' must be an integer"),
        ({"max_tokens": 5, "max_output_tokens": 6}, "given twice"),
        ({"stop": [""]}, "must be a text or a list of texts"),
    ],
)
def test_bad_parameters_are_refused_before_any_call(openai_provider, openai_fake, parameters, message):
    with pytest.raises(ProviderError, match=message) as caught:
        openai_provider.generate(ModelRequest("fake-llm", MESSAGES, parameters))

    assert caught.value.retryable is False
    assert openai_fake.requests == []


def test_a_wrong_key_is_refused_and_not_retryable(openai_settings, openai_fake):
    provider = build_provider("openai", api_key="wrong-key")

    with pytest.raises(ProviderError, match="answered 401: Incorrect API key provided") as caught:
        provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is False
    assert caught.value.status == 401
    assert openai_fake.requests[0].headers["authorization"] == "Bearer wrong-key"
    assert len(openai_fake.requests) == 1  # the client's own retries are off
    provider.close()


def test_an_unknown_model_keeps_the_servers_message(openai_provider):
    with pytest.raises(ProviderError, match=r"answered 404: The model `gpt-9` does not exist\.") as caught:
        openai_provider.generate(ModelRequest("gpt-9", MESSAGES, {}))

    assert caught.value.retryable is False


def test_a_server_error_is_retryable_and_not_retried_by_the_client(openai_provider, openai_fake):
    openai_fake.fail_next(1, status=500)

    with pytest.raises(ProviderError, match="answered 500") as caught:
        openai_provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is True
    assert caught.value.status == 500
    assert len(openai_fake.requests) == 1


def test_429_carries_the_retry_after_of_the_server(openai_provider, openai_fake):
    openai_fake.fail_next(1, status=429, retry_after=7)

    with pytest.raises(ProviderError, match="answered 429: Rate limit reached") as caught:
        openai_provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is True
    assert caught.value.retry_after == 7.0


def test_a_dropped_connection_is_retryable(openai_provider, openai_fake):
    openai_fake.drop_next(1)

    with pytest.raises(ProviderError, match="could not reach the model server") as caught:
        openai_provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is True


def test_a_slow_server_times_out_as_retryable(openai_settings, openai_fake):
    provider = build_provider("openai", timeout=0.2)
    openai_fake.latency_seconds = 1.0

    with pytest.raises(ProviderError, match="did not answer in time") as caught:
        provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is True
    provider.close()


def test_nothing_listening_is_retryable():
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", api_key="k", timeout=2.0)

    with pytest.raises(
        ProviderError, match=re.escape("could not reach the model server at http://127.0.0.1:9/v1")
    ) as caught:
        provider.generate(ModelRequest("fake-llm", MESSAGES, {}))

    assert caught.value.retryable is True
    provider.close()


def test_embeddings_come_back_in_order(openai_provider, openai_fake):
    vectors = openai_provider.embed(["first text", "second text", "third"])

    assert vectors == [pytest.approx(vector_for(t)) for t in ("first text", "second text", "third")]
    [sent] = openai_fake.bodies("/v1/embeddings")
    assert sent["model"] == "fake-embed"
    assert sent["input"] == ["first text", "second text", "third"]


def test_embeddings_without_an_embedding_model_say_so(openai_settings, openai_fake):
    provider = build_provider("openai", embedding_model="")

    with pytest.raises(NotConfigured, match="no embedding model configured") as caught:
        provider.embed(["text"])

    assert caught.value.retryable is False
    assert openai_fake.requests == []
    provider.close()


def test_get_provider_builds_one_from_settings_and_keeps_it(openai_settings, openai_fake):
    provider = get_provider("openai")

    assert get_provider("openai") is provider
    assert provider.kind == "openai" and provider.name == "openai" and provider.is_replay is False
    assert (
        provider.generate(ModelRequest("fake-llm", MESSAGES, {})).text == "echo: How do I reset my password?"
    )
    assert openai_fake.requests[0].headers["authorization"] == "Bearer test-key"


def test_without_a_base_url_the_provider_is_not_configured(settings):
    settings.EVALUATION_OPENAI_BASE_URL = ""

    with pytest.raises(NotConfigured, match="EVALUATION_OPENAI_BASE_URL"):
        build_provider("openai")


def test_an_unknown_kind_is_refused_with_the_kinds_there_are():
    with pytest.raises(
        ImproperlyConfigured, match="unknown provider 'bedrock': use one of vertex, openai, replay"
    ):
        build_provider("bedrock")


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), ("0.5", 0.5), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_headers_are_read_as_seconds(header, expected):
    assert retry_after_seconds(header) == expected
