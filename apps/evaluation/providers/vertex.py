"""Vertex AI Gemini through google-cloud-aiplatform's supported GA client (`aiplatform_v1.PredictionServiceClient`).

`GenerateContent` on `projects/{project}/locations/{location}/publishers/google/models/{model}` (a model
named by a full resource name, a tuned model's endpoint say, is used as it is). System messages become the
`system_instruction`, user and assistant messages `contents` with the roles `user` and `model`; the
parameters go to `generation_config`. Tokens come from `usage_metadata`: in the prompt, and out (the
candidates' tokens plus the thinking tokens, which Vertex bills as output). Embeddings use `EmbedContent`,
one text per call, when `EVALUATION_VERTEX_EMBEDDING_MODEL` names a model.

Project, location, endpoint and credentials are the ones of the Vertex job backend (`VERTEX_PROJECT` or
`GOOGLE_CLOUD_PROJECT`, `VERTEX_LOCATION`, `VERTEX_API_ENDPOINT`); credentials are Application Default
Credentials. The client's own retry is off (`retry=None`): the executor retries, honouring the
`google.rpc.RetryInfo` delay Vertex sends with RESOURCE_EXHAUSTED. RESOURCE_EXHAUSTED, UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL and ABORTED are retryable; any other error keeps Vertex's message.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc
from google.api_core import exceptions as api_exceptions
from google.api_core.client_options import ClientOptions
from google.auth import exceptions as auth_exceptions
from google.cloud import aiplatform_v1
from google.rpc import error_details_pb2

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

RETRYABLE_CODES = {"RESOURCE_EXHAUSTED", "UNAVAILABLE", "DEADLINE_EXCEEDED", "INTERNAL", "ABORTED"}
ROLE = {"user": "user", "assistant": "model"}


def _retry_delay(exc: api_exceptions.GoogleAPICallError) -> float | None:
    for detail in exc.details or ():
        if isinstance(detail, error_details_pb2.RetryInfo):
            return detail.retry_delay.ToTimedelta().total_seconds()
    return None


def translate(exc: BaseException) -> ProviderError:
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        code = exc.grpc_status_code.name if exc.grpc_status_code is not None else type(exc).__name__
        return ProviderError(
            f"Vertex AI answered {code}: {exc.message}",
            retryable=code in RETRYABLE_CODES,
            retry_after=_retry_delay(exc),
            status=exc.code if isinstance(exc.code, int) else None,
        )
    if isinstance(exc, auth_exceptions.TransportError | concurrent.futures.TimeoutError):
        return ProviderError(f"could not reach Vertex AI: {exc}", retryable=True)
    if isinstance(exc, auth_exceptions.GoogleAuthError):
        return ProviderError(f"no usable Google credentials for Vertex AI: {exc}", retryable=False)
    return ProviderError(f"unexpected error from Vertex AI: {type(exc).__name__}: {exc}", retryable=False)


FAILURES = (
    api_exceptions.GoogleAPICallError,
    grpc.RpcError,
    auth_exceptions.GoogleAuthError,
    concurrent.futures.TimeoutError,
)


class VertexGeminiProvider(Provider):
    kind: ClassVar[ProviderKind] = "vertex"

    def __init__(
        self,
        *,
        project: str,
        location: str = "us-central1",
        credentials: Any = None,
        api_endpoint: str = "",
        embedding_model: str = "",
        timeout: float = 60.0,
        name: str = "",
    ) -> None:
        super().__init__(name=name)
        if not project:
            raise NotConfigured("the Vertex AI provider needs VERTEX_PROJECT (or GOOGLE_CLOUD_PROJECT)")
        self.project = project
        self.location = location
        self.embedding_model = embedding_model
        self.timeout = timeout
        self.api_endpoint = api_endpoint or f"{location}-aiplatform.googleapis.com"
        self.client = aiplatform_v1.PredictionServiceClient(
            credentials=credentials, client_options=ClientOptions(api_endpoint=self.api_endpoint)
        )

    def model_path(self, model: str) -> str:
        if model.startswith("projects/"):
            return model
        return f"projects/{self.project}/locations/{self.location}/publishers/google/models/{model}"

    def _request(self, request: ModelRequest) -> aiplatform_v1.GenerateContentRequest:
        check_messages(request.messages)
        params = normalise_parameters(request.parameters)
        system = [m["content"] for m in request.messages if m["role"] == "system"]
        contents = [
            aiplatform_v1.Content(role=ROLE[m["role"]], parts=[aiplatform_v1.Part(text=m["content"])])
            for m in request.messages
            if m["role"] != "system"
        ]
        if not contents:
            raise ProviderError(
                "Gemini needs at least one user message besides the system ones", retryable=False
            )
        config: dict[str, Any] = {
            name: params[name]
            for name in (
                "temperature",
                "top_p",
                "top_k",
                "max_output_tokens",
                "seed",
                "presence_penalty",
                "frequency_penalty",
            )
            if name in params
        }
        if "stop" in params:
            config["stop_sequences"] = params["stop"]
        return aiplatform_v1.GenerateContentRequest(
            model=self.model_path(request.model),
            contents=contents,
            system_instruction=(
                aiplatform_v1.Content(parts=[aiplatform_v1.Part(text=text) for text in system])
                if system
                else None
            ),
            generation_config=aiplatform_v1.GenerationConfig(**config),
        )

    def generate(self, request: ModelRequest) -> ModelResponse:
        call = self._request(request)
        started = time.perf_counter()
        try:
            answer = self.client.generate_content(request=call, retry=None, timeout=self.timeout)
        except FAILURES as exc:
            raise translate(exc) from exc
        latency_ms = round((time.perf_counter() - started) * 1000)
        if not answer.candidates:
            reason = answer.prompt_feedback.block_reason
            why = f" (prompt blocked: {reason.name})" if reason else ""
            raise ProviderError(f"Vertex AI returned no candidate{why}", retryable=False)
        candidate = answer.candidates[0]
        usage = answer.usage_metadata
        return ModelResponse(
            text="".join(part.text for part in candidate.content.parts),
            tokens_in=usage.prompt_token_count,
            tokens_out=usage.candidates_token_count + usage.thoughts_token_count,
            latency_ms=latency_ms,
            model=answer.model_version or request.model,
        )

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.embedding_model:
            raise NotConfigured(
                f"the Vertex AI provider {self.name!r} has no embedding model configured "
                "(EVALUATION_VERTEX_EMBEDDING_MODEL)"
            )
        vectors = []
        for text in texts:
            call = aiplatform_v1.EmbedContentRequest(
                model=self.model_path(self.embedding_model),
                content=aiplatform_v1.Content(parts=[aiplatform_v1.Part(text=text)]),
            )
            try:
                answer = self.client.embed_content(request=call, retry=None, timeout=self.timeout)
            except FAILURES as exc:
                raise translate(exc) from exc
            vectors.append(list(answer.embedding.values))
        return vectors

    def close(self) -> None:
        self.client.transport.close()
