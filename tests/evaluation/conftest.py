"""Fixtures for the evaluation tests: the OpenAI-compatible fake and providers aimed at it."""

import pytest

from apps.evaluation.providers import build_provider, get_provider
from tests.evaluation.openai_fake import FakeOpenAI


@pytest.fixture
def openai_fake():
    """A fresh OpenAI-compatible fake on its own port (key "test-key"; models "fake-llm", "fake-embed")."""
    fake = FakeOpenAI().start()
    yield fake
    fake.stop()


@pytest.fixture
def openai_settings(settings, openai_fake):
    """EVALUATION_OPENAI_* aimed at the fake, with short timeouts; `get_provider("openai")` builds from them."""
    settings.EVALUATION_OPENAI_BASE_URL = openai_fake.base_url
    settings.EVALUATION_OPENAI_API_KEY = openai_fake.api_key
    settings.EVALUATION_OPENAI_EMBEDDING_MODEL = "fake-embed"
    settings.EVALUATION_TIMEOUT_SECONDS = 5.0
    get_provider.cache_clear()
    yield settings
    get_provider.cache_clear()


@pytest.fixture
def openai_provider(openai_settings):
    """A provider of its own, as production builds it, aimed at the fake."""
    provider = build_provider("openai")
    yield provider
    provider.close()
