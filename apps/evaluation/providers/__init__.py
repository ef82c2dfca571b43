"""Model providers for evaluation runs: `get_provider(kind)` returns the configured one.

kind="vertex"  apps.evaluation.providers.vertex: Vertex AI Gemini (aiplatform_v1 PredictionService)
kind="openai"  apps.evaluation.providers.openai_compat: any OpenAI-compatible endpoint (a vLLM, say)
kind="replay"  apps.evaluation.providers.replay: recorded responses keyed by the rendered request

`build_provider(kind, **options)` builds a new one from settings, any option given overriding its
setting; `get_provider(kind)` caches one per kind for the process (its client and connection pool are
shared by every run). `run_requests` (executor.py) sends a run's requests with bounded concurrency, the
provider's rate limit and retries.
"""

from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from apps.evaluation.providers.base import (
    SUPPORTED_PARAMETERS,
    ModelRequest,
    ModelResponse,
    NotConfigured,
    Provider,
    ProviderError,
    ProviderKind,
    normalise_parameters,
)
from apps.evaluation.providers.executor import Outcome, RateLimiter, rate_limiter, run_requests

PROVIDER_KINDS: tuple[ProviderKind, ...] = ("vertex", "openai", "replay")


def build_provider(kind: str, **options: Any) -> Provider:
    """A new provider of `kind`, configured from settings; `options` override them (the constructor's
    keyword arguments: base_url, api_key, embedding_model, timeout, project, location, lookup, …)."""
    if kind == "openai":
        from apps.evaluation.providers.openai_compat import OpenAICompatibleProvider

        values: dict[str, Any] = {
            "base_url": settings.EVALUATION_OPENAI_BASE_URL,
            "api_key": settings.EVALUATION_OPENAI_API_KEY,
            "embedding_model": settings.EVALUATION_OPENAI_EMBEDDING_MODEL,
            "timeout": float(settings.EVALUATION_TIMEOUT_SECONDS),
        }
        return OpenAICompatibleProvider(**{**values, **options})
    if kind == "vertex":
        from apps.evaluation.providers.vertex import VertexGeminiProvider

        values = {
            "project": settings.VERTEX_PROJECT or settings.GOOGLE_CLOUD_PROJECT,
            "location": settings.VERTEX_LOCATION or "us-central1",
            "api_endpoint": settings.VERTEX_API_ENDPOINT,
            "embedding_model": settings.EVALUATION_VERTEX_EMBEDDING_MODEL,
            "timeout": float(settings.EVALUATION_TIMEOUT_SECONDS),
        }
        if "credentials" not in options and settings.VERTEX_ANONYMOUS_CREDENTIALS:
            from google.auth.credentials import AnonymousCredentials

            values["credentials"] = AnonymousCredentials()  # only for the in-repo fake
        return VertexGeminiProvider(**{**values, **options})
    if kind == "replay":
        from apps.evaluation.providers.replay import ReplayProvider

        lookup = options.pop("lookup", None)
        if lookup is None:
            if not settings.EVALUATION_REPLAY_LOOKUP:
                raise ImproperlyConfigured(
                    "the replay provider needs EVALUATION_REPLAY_LOOKUP (the dotted path of the lookup)"
                )
            lookup = import_string(settings.EVALUATION_REPLAY_LOOKUP)
        return ReplayProvider(lookup, **options)
    raise ImproperlyConfigured(f"unknown provider {kind!r}: use one of {', '.join(PROVIDER_KINDS)}")


@cache
def get_provider(kind: str) -> Provider:
    """The process's provider of `kind`, built from settings on first use."""
    return build_provider(kind)


__all__ = [
    "PROVIDER_KINDS",
    "SUPPORTED_PARAMETERS",
    "ModelRequest",
    "ModelResponse",
    "NotConfigured",
    "Outcome",
    "Provider",
    "ProviderError",
    "ProviderKind",
    "RateLimiter",
    "build_provider",
    "get_provider",
    "normalise_parameters",
    "rate_limiter",
    "run_requests",
]
