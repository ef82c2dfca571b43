"""Run many requests against one provider: bounded concurrency, a rate limit, retries.

`run_requests(provider, requests, on_result=…)` sends every request and reports each outcome as it
finishes; it never raises for a request that failed (its outcome carries the error), so a run with
partial failures shows them per case.

- Concurrency: a pool of `concurrency` threads (the calls are I/O), so at most that many requests are in
  flight. A replay provider (`uses_threads = False`) runs in the caller's thread instead.
- Rate: a token bucket per provider name (`rate_limiter(name, rate)`), shared by every run of this
  process; each attempt, retries included, takes a token. Limits are per process: N worker processes
  together send up to N times the rate, so set `EVALUATION_RATE_PER_SECOND` to the provider's quota
  divided by the processes that run evaluations.
- Retries: a retryable ProviderError is tried again, up to `max_attempts` in all, after an exponential
  backoff with full jitter (uniform between 0 and min(cap, base × 2^(attempt − 1))), or the server's
  Retry-After when it asks for longer. A Retry-After above the cap is not waited for: the request ends
  with that error.
- Outcomes: `on_result(outcome)` is called in the caller's thread, in the order requests finish, while
  others are still in flight (so the caller writes partial results with its own database connection).
  If it raises, requests not yet started are cancelled and the exception propagates.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from django.conf import settings

from apps.evaluation.providers.base import ModelRequest, ModelResponse, Provider, ProviderError

Clock = Callable[[], float]
Sleep = Callable[[float], None]


@dataclass(frozen=True)
class Outcome:
    index: int  # the request's position in `requests`
    request: ModelRequest
    response: ModelResponse | None  # None when it failed
    error: ProviderError | None  # the last attempt's error when it failed
    attempts: int  # calls made (1 when the first one answered)

    @property
    def ok(self) -> bool:
        return self.response is not None


class RateLimiter:
    """A token bucket: `rate` tokens a second, at most `burst` saved up. `acquire()` takes one token,
    waiting (outside the lock) until it is due; waits are reserved in arrival order, so N callers at
    rate R take at least (N − burst) / R seconds. `rate <= 0` means no limit."""

    def __init__(
        self, rate: float, *, burst: float = 1.0, clock: Clock = time.monotonic, sleep: Sleep = time.sleep
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._updated = clock()

    def set_rate(self, rate: float) -> None:
        with self._lock:
            self.rate = rate

    def acquire(self) -> float:
        """Take a token; returns the seconds waited for it."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            wait_for = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait_for > 0:
            self.sleep(wait_for)
        return wait_for


_limiters: dict[str, RateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter(name: str, rate: float) -> RateLimiter:
    """The process-wide limiter of the provider called `name`, at `rate` requests a second (a later call
    with another rate changes it for every run that shares it)."""
    with _limiters_lock:
        limiter = _limiters.get(name)
        if limiter is None:
            limiter = _limiters[name] = RateLimiter(rate)
        elif limiter.rate != rate:
            limiter.set_rate(rate)
        return limiter


def backoff_delay(attempt: int, *, base: float, cap: float, rng: Callable[[float, float], float]) -> float:
    """Full jitter: uniform in [0, min(cap, base × 2^(attempt − 1))] after the `attempt`-th failure."""
    return rng(0.0, min(cap, base * 2 ** (attempt - 1)))


def call_with_retries(
    provider: Provider,
    request: ModelRequest,
    *,
    limiter: RateLimiter | None,
    max_attempts: int,
    backoff_base: float,
    backoff_cap: float,
    sleep: Sleep = time.sleep,
    rng: Callable[[float, float], float] = random.uniform,
) -> tuple[ModelResponse | None, ProviderError | None, int]:
    """(response, None, attempts) or (None, the last error, attempts); never raises."""
    attempt = 0
    while True:
        attempt += 1
        if limiter is not None:
            limiter.acquire()
        try:
            return provider.generate(request), None, attempt
        except ProviderError as exc:
            error = exc
        except Exception as exc:  # a provider bug must fail its case, not the run
            error = ProviderError(f"the provider failed: {type(exc).__name__}: {exc}", retryable=False)
        if not error.retryable or attempt >= max_attempts:
            return None, error, attempt
        delay = backoff_delay(attempt, base=backoff_base, cap=backoff_cap, rng=rng)
        if error.retry_after is not None:
            if error.retry_after > backoff_cap:
                return None, error, attempt
            delay = max(delay, error.retry_after)
        sleep(delay)


def run_requests(
    provider: Provider,
    requests: Sequence[ModelRequest],
    *,
    on_result: Callable[[Outcome], None] | None = None,
    concurrency: int | None = None,
    rate_per_second: float | None = None,
    max_attempts: int | None = None,
    backoff_base: float | None = None,
    backoff_cap: float | None = None,
    limiter: RateLimiter | None = None,
    sleep: Sleep = time.sleep,
    rng: Callable[[float, float], float] = random.uniform,
) -> list[Outcome]:
    """Send every request; return the outcomes in the order of `requests` (and report each to `on_result`
    as it finishes). Unset arguments come from settings: EVALUATION_CONCURRENCY, EVALUATION_RATE_PER_SECOND,
    EVALUATION_MAX_ATTEMPTS, EVALUATION_RETRY_BASE_SECONDS, EVALUATION_RETRY_MAX_SECONDS. `limiter`
    replaces the provider's shared one (tests)."""
    concurrency = concurrency if concurrency is not None else settings.EVALUATION_CONCURRENCY
    rate = rate_per_second if rate_per_second is not None else settings.EVALUATION_RATE_PER_SECOND
    attempts = max_attempts if max_attempts is not None else settings.EVALUATION_MAX_ATTEMPTS
    base = backoff_base if backoff_base is not None else settings.EVALUATION_RETRY_BASE_SECONDS
    cap = backoff_cap if backoff_cap is not None else settings.EVALUATION_RETRY_MAX_SECONDS
    if concurrency < 1 or attempts < 1:
        raise ValueError("concurrency and max_attempts must be at least 1")
    if limiter is None and provider.uses_threads:
        limiter = rate_limiter(provider.name, rate)
    outcomes: list[Outcome | None] = [None] * len(requests)

    def one(index: int) -> Outcome:
        response, error, made = call_with_retries(
            provider,
            requests[index],
            limiter=limiter,
            max_attempts=attempts,
            backoff_base=base,
            backoff_cap=cap,
            sleep=sleep,
            rng=rng,
        )
        return Outcome(index, requests[index], response, error, made)

    def done(outcome: Outcome) -> None:
        outcomes[outcome.index] = outcome
        if on_result is not None:
            on_result(outcome)

    if not provider.uses_threads:
        for index in range(len(requests)):
            done(one(index))
        return [o for o in outcomes if o is not None]

    pool = ThreadPoolExecutor(
        max_workers=min(concurrency, max(1, len(requests))), thread_name_prefix="provider"
    )
    try:
        pending: set[Future[Outcome]] = {pool.submit(one, index) for index in range(len(requests))}
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                done(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return [o for o in outcomes if o is not None]
