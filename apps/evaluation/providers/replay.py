"""The replay provider: answers from recorded responses keyed by the rendered request (`ModelRequest.key()`).

For reproducible re-scoring, CI regression checks and the demo. It calls no model: `lookup(key)` returns
the recorded response or None, and a request with no recording fails (not retried) naming its key. The
console backs `lookup` with its table of recorded responses (`EVALUATION_REPLAY_LOOKUP`, a dotted path);
results from it are always labelled as replay (`is_replay`). It runs in the caller's thread
(`uses_threads = False`), so a lookup that reads the database uses the caller's connection.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from apps.evaluation.providers.base import ModelRequest, ModelResponse, Provider, ProviderError, ProviderKind

Lookup = Callable[[str], ModelResponse | None]


class ReplayProvider(Provider):
    kind: ClassVar[ProviderKind] = "replay"
    is_replay: ClassVar[bool] = True
    uses_threads: ClassVar[bool] = False

    def __init__(self, lookup: Lookup, *, name: str = "") -> None:
        super().__init__(name=name)
        self.lookup = lookup

    def generate(self, request: ModelRequest) -> ModelResponse:
        key = request.key()
        try:
            recorded = self.lookup(key)
        except Exception as exc:  # the lookup is the console's: its failure is this case's, not the run's
            raise ProviderError(
                f"the recorded responses could not be read (key {key}): {type(exc).__name__}: {exc}",
                retryable=False,
            ) from exc
        if recorded is None:
            raise ProviderError(f"no recorded response for this request (key {key})", retryable=False)
        return recorded


def recordings(responses: dict[str, ModelResponse]) -> Lookup:
    """A lookup over a dict of recordings (key → response): for tests and scripts."""
    return responses.get
