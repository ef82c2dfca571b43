"""What every model provider speaks: a request, a response, an error, and the provider interface.

A request is what the console sends a model for one case: the model name, the rendered messages (role and
content) and the version's parameters. Its `key()` is the replay key: the SHA-256 of a canonical JSON of
the three, so the same rendered request always finds the same recording, and any change (a word of a
message, a parameter) finds none.

Parameters are the prompt version's `parameters` (apps/catalog). Each provider maps the names below to its
own API; any other name is refused before the call (a typo must not silently evaluate something else):

| parameter | meaning | OpenAI-compatible | Vertex AI Gemini |
|---|---|---|---|
| `temperature` | sampling temperature | `temperature` | `generation_config.temperature` |
| `top_p` | nucleus sampling | `top_p` | `top_p` |
| `top_k` | top-k sampling | `top_k` (vLLM's extra parameter) | `top_k` |
| `max_output_tokens` or `max_tokens` | output length bound | `max_tokens` | `max_output_tokens` |
| `stop` or `stop_sequences` | a text or a list of texts | `stop` | `stop_sequences` |
| `seed` | sampling seed | `seed` | `seed` |
| `presence_penalty`, `frequency_penalty` | penalties | the same | the same |
"""

from __future__ import annotations

import hashlib
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

ProviderKind = Literal["vertex", "openai", "replay"]
ROLES = ("system", "user", "assistant")


class ProviderError(Exception):
    """A call that did not give an answer. `retryable`: worth trying again (rate limited, unavailable,
    timed out); `retry_after`: seconds the server asked us to wait (None when it did not say); `status`:
    the HTTP status (or the gRPC error's HTTP equivalent) when there was one."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, retryable={self.retryable}, "
            f"retry_after={self.retry_after}, status={self.status})"
        )


class NotConfigured(ProviderError):
    """The provider cannot do this with its settings (no embedding model configured, say). Never retried."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


@dataclass(frozen=True)
class ModelRequest:
    model: str
    messages: list[dict[str, str]]  # [{"role": "system" | "user" | "assistant", "content": "…"}]
    parameters: dict[str, Any] = field(default_factory=dict)

    def canonical(self) -> str:
        return json.dumps(
            {"model": self.model, "messages": self.messages, "parameters": self.parameters},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )

    def key(self) -> str:
        """The replay key: SHA-256 (hex) of the canonical JSON of model, messages and parameters."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()


@dataclass(frozen=True)
class ModelResponse:
    text: str
    tokens_in: int
    tokens_out: int
    latency_ms: int
    model: str  # the model that answered, as the provider names it


# -- parameters -------------------------------------------------------------------------------------------

_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGERS = ("top_k", "max_output_tokens", "seed")
_ALIASES = {"max_tokens": "max_output_tokens", "stop_sequences": "stop"}
SUPPORTED_PARAMETERS = (*_NUMBERS, *_INTEGERS, *_ALIASES, "stop")


def normalise_parameters(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The version's parameters under one name each (`max_output_tokens`, `stop` as a list), checked.
    Raises a non-retryable ProviderError naming the parameter that is unknown, doubled or malformed."""
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        canonical = _ALIASES.get(name, name)
        if canonical not in (*_NUMBERS, *_INTEGERS, "stop"):
            raise ProviderError(
                f"unsupported parameter {name!r}: use {', '.join(SUPPORTED_PARAMETERS)}", retryable=False
            )
        if canonical in out:
            raise ProviderError(
                f"parameter {canonical!r} is given twice (as {name!r} and another name)", retryable=False
            )
        if value is None:
            continue
        if canonical in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ProviderError(f"parameter {name!r} must be a number, not {value!r}", retryable=False)
            out[canonical] = float(value)
        elif canonical in _INTEGERS:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ProviderError(f"parameter {name!r} must be an integer, not {value!r}", retryable=False)
            out[canonical] = value
        else:
            stops = [value] if isinstance(value, str) else value
            if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
                raise ProviderError(
                    f"parameter {name!r} must be a text or a list of texts, not {value!r}", retryable=False
                )
            out[canonical] = stops
    return out


def check_messages(messages: Sequence[Mapping[str, Any]]) -> None:
    if not messages:
        raise ProviderError("the request has no messages", retryable=False)
    for index, message in enumerate(messages):
        if message.get("role") not in ROLES or not isinstance(message.get("content"), str):
            raise ProviderError(
                f"messages[{index}]: each message needs a role ({', '.join(ROLES)}) and a text content",
                retryable=False,
            )


# -- the interface ----------------------------------------------------------------------------------------


class Provider(ABC):
    """A model behind one API. Implementations are safe to call from several threads at once."""

    kind: ClassVar[ProviderKind]
    is_replay: ClassVar[bool] = False
    # The executor calls a provider that does I/O from a pool of threads and paces it with the rate limiter
    # of its name; a provider that only looks things up (replay) runs in the caller's thread, unpaced.
    uses_threads: ClassVar[bool] = True

    def __init__(self, *, name: str = "") -> None:
        self.name = name or self.kind

    @abstractmethod
    def generate(self, request: ModelRequest) -> ModelResponse:
        """One answer; raises ProviderError (never anything else) when there is none."""

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; NotConfigured when the provider has no embedding model."""
        raise NotConfigured(f"the {self.kind} provider {self.name!r} has no embedding model configured")

    def close(self) -> None:  # noqa: B027 (optional: only providers with connections close them)
        """Release connections (the provider is not used afterwards)."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"
