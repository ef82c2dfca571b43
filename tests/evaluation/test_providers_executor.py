"""The executor (run_requests): retries, the rate limiter and concurrency, with the real OpenAI-compatible
provider against the in-repo fake server, and with scripted providers where time must be controlled."""

import threading
import time

import pytest

from apps.evaluation.providers import (
    ModelRequest,
    ModelResponse,
    Provider,
    ProviderError,
    RateLimiter,
    build_provider,
    rate_limiter,
    run_requests,
)
from apps.evaluation.providers.executor import backoff_delay


def ask(text: str, model: str = "fake-llm") -> ModelRequest:
    return ModelRequest(model, [{"role": "user", "content": text}], {"temperature": 0})


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Scripted(Provider):
    """A provider whose answers are scripted per call: a ProviderError to raise, or a text."""

    kind = "openai"

    def __init__(self, script: list, name: str = "scripted") -> None:
        super().__init__(name=name)
        self.script = list(script)
        self.calls = 0

    def generate(self, request: ModelRequest) -> ModelResponse:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, Exception):
            raise step
        return ModelResponse(step, 1, 1, 1, request.model)


# -- retries against the real client and the fake server -------------------------------------------------


def run(provider, requests, **options):
    options = {"rate_per_second": 0, "backoff_base": 0.01, "backoff_cap": 5.0, **options}
    return run_requests(provider, requests, **options)


def test_a_500_then_an_answer_is_one_success_in_two_attempts(openai_provider, openai_fake):
    openai_fake.fail_next(1, status=500)

    [outcome] = run(openai_provider, [ask("hello")], max_attempts=3)

    assert outcome.ok and outcome.response.text == "echo: hello"
    assert outcome.attempts == 2
    assert outcome.error is None
    assert len(openai_fake.bodies()) == 2


def test_a_429_with_retry_after_is_waited_for(openai_provider, openai_fake):
    openai_fake.fail_next(1, status=429, retry_after=0.6)
    started = time.monotonic()

    [outcome] = run(openai_provider, [ask("hello")], max_attempts=3, backoff_base=0.001)

    assert outcome.ok and outcome.attempts == 2
    assert time.monotonic() - started >= 0.6


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(openai_provider, openai_fake):
    openai_fake.fail_next(1, status=429, retry_after=120)
    started = time.monotonic()

    [outcome] = run(openai_provider, [ask("hello")], max_attempts=3, backoff_cap=5.0)

    assert not outcome.ok and outcome.attempts == 1
    assert outcome.error.status == 429 and outcome.error.retry_after == 120
    assert time.monotonic() - started < 5


def test_a_dropped_connection_is_retried(openai_provider, openai_fake):
    openai_fake.drop_next(1)

    [outcome] = run(openai_provider, [ask("hello")], max_attempts=3)

    assert outcome.ok and outcome.attempts == 2


def test_a_400_is_not_retried(openai_provider, openai_fake):
    [outcome] = run(
        openai_provider, [ModelRequest("fake-llm", [{"role": "user", "content": "x"}], {"temperature": 5})]
    )

    assert not outcome.ok
    assert outcome.attempts == 1
    assert outcome.error.status == 400 and outcome.error.retryable is False
    assert "temperature must be between 0 and 2" in outcome.error.message
    assert len(openai_fake.bodies()) == 1


def test_attempts_stop_at_max_attempts_and_keep_the_last_error(openai_provider, openai_fake):
    openai_fake.fail_next(5, status=503)

    [outcome] = run(openai_provider, [ask("hello")], max_attempts=3)

    assert not outcome.ok
    assert outcome.attempts == 3
    assert outcome.error.status == 503 and outcome.error.retryable is True
    assert len(openai_fake.bodies()) == 3


def test_partial_failures_are_reported_per_request_and_the_run_does_not_raise(openai_provider, openai_fake):
    requests = [ask("one"), ask("two", model="no-such-model"), ask("three")]
    seen = []

    outcomes = run(openai_provider, requests, max_attempts=2, on_result=seen.append)

    assert [o.ok for o in outcomes] == [True, False, True]
    assert [o.index for o in outcomes] == [0, 1, 2]
    assert outcomes[1].error.status == 404
    assert outcomes[2].response.text == "echo: three"
    assert sorted(o.index for o in seen) == [0, 1, 2]


def test_on_result_is_called_in_the_callers_thread_as_each_request_finishes(openai_provider, openai_fake):
    threads = set()
    order = []

    def record(outcome):
        threads.add(threading.get_ident())
        order.append(outcome)

    # whichever request arrives first is told to come back in 0.5 s: the other two are reported before it
    openai_fake.fail_next(1, status=429, retry_after=0.5)
    run(openai_provider, [ask("a"), ask("b"), ask("c")], concurrency=3, max_attempts=2, on_result=record)

    assert threads == {threading.get_ident()}
    assert [o.attempts for o in order] == [1, 1, 2]
    assert sorted(o.index for o in order) == [0, 1, 2]


def test_a_provider_bug_fails_its_request_not_the_run():
    provider = Scripted([RuntimeError("boom")])

    outcomes = run(provider, [ask("a"), ask("b")], concurrency=1)

    assert [o.ok for o in outcomes] == [False, True]
    assert outcomes[0].error.message == "the provider failed: RuntimeError: boom"
    assert outcomes[0].error.retryable is False and outcomes[0].attempts == 1


def test_an_on_result_that_raises_stops_the_run():
    provider = Scripted([])

    def explode(outcome):
        raise ValueError("cannot write")

    with pytest.raises(ValueError, match="cannot write"):
        run(provider, [ask(str(i)) for i in range(50)], concurrency=2, on_result=explode)

    assert provider.calls < 50  # the requests not yet started were cancelled


# -- backoff --------------------------------------------------------------------------------------------


def test_backoff_is_exponential_with_full_jitter_and_capped():
    highest = lambda low, high: high  # noqa: E731
    lowest = lambda low, high: low  # noqa: E731

    assert [backoff_delay(n, base=0.5, cap=3.0, rng=highest) for n in (1, 2, 3, 4, 5)] == [
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
    ]
    assert backoff_delay(4, base=0.5, cap=3.0, rng=lowest) == 0.0


def test_retries_wait_the_backoff_or_the_retry_after_whichever_is_longer():
    clock = FakeClock()
    provider = Scripted(
        [
            ProviderError("unavailable", retryable=True),
            ProviderError("unavailable", retryable=True),
            ProviderError("slow down", retryable=True, retry_after=4.0),
            "finally",
        ]
    )

    [outcome] = run_requests(
        provider,
        [ask("a")],
        max_attempts=4,
        rate_per_second=0,
        backoff_base=1.0,
        backoff_cap=10.0,
        sleep=clock.sleep,
        rng=lambda low, high: high,
    )

    assert outcome.ok and outcome.response.text == "finally" and outcome.attempts == 4
    assert clock.slept == [1.0, 2.0, 4.0]


def test_the_settings_give_the_defaults(settings):
    settings.EVALUATION_MAX_ATTEMPTS = 2
    settings.EVALUATION_RATE_PER_SECOND = 0
    settings.EVALUATION_RETRY_BASE_SECONDS = 0.0
    provider = Scripted([ProviderError("x", retryable=True)] * 5, name="defaults")

    [outcome] = run_requests(provider, [ask("a")])

    assert outcome.attempts == 2 and provider.calls == 2


# -- the rate limiter -----------------------------------------------------------------------------------


def test_n_acquires_at_r_per_second_take_n_minus_one_over_r():
    clock = FakeClock()
    limiter = RateLimiter(5.0, clock=clock, sleep=clock.sleep)
    start = clock.now

    for _ in range(11):
        limiter.acquire()

    assert clock.now - start == pytest.approx(10 / 5.0)


def test_a_burst_lets_that_many_through_at_once_then_paces():
    clock = FakeClock()
    limiter = RateLimiter(10.0, burst=3, clock=clock, sleep=clock.sleep)

    waits = [limiter.acquire() for _ in range(5)]

    assert waits[:3] == [0, 0, 0]
    assert waits[3:] == [pytest.approx(0.1), pytest.approx(0.1)]


def test_tokens_come_back_while_idle_up_to_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(2.0, burst=2, clock=clock, sleep=clock.sleep)
    limiter.acquire(), limiter.acquire()

    clock.now += 60  # a minute idle saves up at most `burst` tokens

    assert [limiter.acquire() for _ in range(3)] == [0, 0, pytest.approx(0.5)]


def test_a_run_is_paced_by_the_providers_rate(openai_provider, openai_fake):
    openai_provider.name = "paced-openai"  # its own limiter, not shared with other tests
    started = time.monotonic()

    outcomes = run_requests(
        openai_provider, [ask(str(i)) for i in range(11)], concurrency=8, rate_per_second=20
    )

    assert all(o.ok for o in outcomes)
    assert time.monotonic() - started >= 10 / 20


def test_runs_of_one_provider_share_its_limiter_across_threads(openai_provider, openai_fake):
    openai_provider.name = "shared-openai"
    started = time.monotonic()
    runs = [
        threading.Thread(
            target=run_requests,
            args=(openai_provider, [ask(f"{n}-{i}") for i in range(5)]),
            kwargs={"concurrency": 5, "rate_per_second": 20},
        )
        for n in range(2)
    ]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()

    assert len(openai_fake.bodies()) == 10
    assert time.monotonic() - started >= 9 / 20  # 10 requests at 20/s, whichever run sent them
    assert rate_limiter("shared-openai", 20) is rate_limiter("shared-openai", 20)


def test_retries_take_a_token_too():
    clock = FakeClock()
    limiter = RateLimiter(1.0, clock=clock, sleep=clock.sleep)
    provider = Scripted([ProviderError("x", retryable=True)] * 2)

    run_requests(
        provider,
        [ask("a")],
        max_attempts=3,
        limiter=limiter,
        backoff_base=0.0,
        sleep=clock.sleep,
        concurrency=1,
    )

    assert provider.calls == 3
    assert clock.now - 1000.0 == pytest.approx(2.0)


# -- concurrency ----------------------------------------------------------------------------------------


def test_requests_run_concurrently_up_to_the_limit_and_never_above(openai_settings, openai_fake):
    openai_fake.latency_seconds = 0.2
    provider = build_provider("openai", name="concurrent-openai")
    requests = [ask(f"case {i}") for i in range(64)]
    started = time.monotonic()

    outcomes = run_requests(provider, requests, concurrency=32, rate_per_second=0)

    elapsed = time.monotonic() - started
    assert all(o.ok for o in outcomes)
    assert [o.response.text for o in outcomes] == [f"echo: case {i}" for i in range(64)]
    assert openai_fake.max_in_flight == 32
    assert elapsed < 64 * 0.2 / 4  # serial would take 12.8 s; two waves of 32 take about 0.4 s
    provider.close()


def test_the_default_concurrency_is_32(openai_settings, openai_fake):
    openai_fake.latency_seconds = 0.2
    provider = build_provider("openai", name="default-concurrency-openai")

    run_requests(provider, [ask(f"case {i}") for i in range(40)], rate_per_second=0)

    assert openai_fake.max_in_flight == 32
    provider.close()
