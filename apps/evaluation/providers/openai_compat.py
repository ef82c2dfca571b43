"""Any OpenAI-compatible endpoint (OpenAI itself, a self-hosted vLLM, …) through the official `openai` client.

One client per provider, so its connection pool is shared by every thread of a run. The client's own
retries are off (`max_retries=0`): the executor retries, and counts the attempts it records. Each call has a
timeout. Errors become ProviderError: 429 (with its Retry-After), 408, 409, 5xx, timeouts and dropped
connections are retryable; any other refusal (a bad key, an unknown model, a bad parameter) is not, and
keeps the server's message.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import openai

from apps.evaluation.providers.base import (
    ModelRequest,
    ModelResponse,
    NotConfigured,
    Provider,
    ProviderError,
    ProviderKind,
    check_messages,
    normalise_parameters,
)

RETRYABLE_STATUSES = {408, 409, 429}


def retry_after_seconds(value: str | None) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return error["message"]
        if isinstance(error, str):
            return error
    return exc.message


def _error_code(exc: openai.APIStatusError) -> str:
    body = exc.body
    error = body.get("error", body) if isinstance(body, dict) else None
    return str(error.get("code") or "") if isinstance(error, dict) else ""


def translate(exc: openai.OpenAIError, base_url: str) -> ProviderError:
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(f"the model server at {base_url} did not answer in time", retryable=True)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return ProviderError(
            f"could not reach the model server at {base_url}: {type(cause).__name__}: {cause}", retryable=True
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        # OpenAI answers 429 "insufficient_quota" when the account is out of credit: waiting does not help.
        retryable = (status in RETRYABLE_STATUSES or status >= 500) and _error_code(
            exc
        ) != "insufficient_quota"
        return ProviderError(
            f"the model server answered {status}: {_server_message(exc)}",
            retryable=retryable,
            retry_after=retry_after_seconds(exc.response.headers.get("retry-after")),
            status=status,
        )
    return ProviderError(f"unexpected answer from the model server at {base_url}: {exc}", retryable=False)


class OpenAICompatibleProvider(Provider):
    kind: ClassVar[ProviderKind] = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str = "",
        embedding_model: str = "",
        timeout: float = 60.0,
        name: str = "",
    ) -> None:
        super().__init__(name=name)
        if not base_url:
            raise NotConfigured(
                "the OpenAI-compatible provider needs a base URL (EVALUATION_OPENAI_BASE_URL)"
            )
        self.base_url = base_url
        self.embedding_model = embedding_model
        self.timeout = timeout
        # A self-hosted server often needs no key; the client insists on one, and sends it as a bearer token.
        self.client = openai.OpenAI(
            base_url=base_url, api_key=api_key or "unused", max_retries=0, timeout=timeout
        )

    def _options(self, request: ModelRequest) -> dict[str, Any]:
        params = normalise_parameters(request.parameters)
        options: dict[str, Any] = {}
        for name in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "stop"):
            if name in params:
                options[name] = params[name]
        if "max_output_tokens" in params:
            options["max_tokens"] = params["max_output_tokens"]
        if "top_k" in params:  # not in OpenAI's API; vLLM and most compatible servers take it in the body
            options["extra_body"] = {"top_k": params["top_k"]}
        return options

    def generate(self, request: ModelRequest) -> ModelResponse:
        check_messages(request.messages)
        options = self._options(request)
        messages: Any = [{"role": m["role"], "content": m["content"]} for m in request.messages]
        started = time.perf_counter()
        try:
            completion = self.client.chat.completions.create(
                model=request.model, messages=messages, **options
            )
        except openai.OpenAIError as exc:
            raise translate(exc, self.base_url) from exc
        latency_ms = round((time.perf_counter() - started) * 1000)
        if not completion.choices:
            raise ProviderError("the model server answered with no choices", retryable=False)
        usage = completion.usage
        return ModelResponse(
            text=completion.choices[0].message.content or "",
            tokens_in=usage.prompt_tokens if usage else 0,
            tokens_out=usage.completion_tokens if usage else 0,
            latency_ms=latency_ms,
            model=completion.model or request.model,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.embedding_model:
            raise NotConfigured(
                f"the OpenAI-compatible provider {self.name!r} has no embedding model configured "
                "(EVALUATION_OPENAI_EMBEDDING_MODEL)"
            )
        if not texts:
            return []
        try:
            answer = self.client.embeddings.create(
                model=self.embedding_model, input=list(texts), encoding_format="float"
            )
        except openai.OpenAIError as exc:
            raise translate(exc, self.base_url) from exc
        vectors = [list(item.embedding) for item in sorted(answer.data, key=lambda item: item.index)]
        if len(vectors) != len(texts):
            raise ProviderError(
                f"the model server returned {len(vectors)} embeddings for {len(texts)} texts", retryable=False
            )
        return vectors

    def close(self) -> None:
        self.client.close()
