"""Client.prompts against a live console: resolve, the in-process cache, ETag revalidation, stale while
revalidate, last known good (memory and disk), budgets, and rendering like the console does."""

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from atalaya_sdk import (
    AsyncClient,
    BudgetExhausted,
    Client,
    ConsoleUnavailable,
    PromptNotFound,
    VariablesMismatch,
)

pytestmark = pytest.mark.integration  # a live console: gunicorn and a Celery worker


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, recording each request that leaves the process and its status."""

    def __init__(self, delay: float = 0.0):
        super().__init__()
        self.sent: list[tuple[str, int]] = []
        self.delay = delay

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        time.sleep(self.delay)
        response = super().handle_request(request)
        self.sent.append((request.url.path, response.status_code))
        return response


@pytest.fixture
def make_client(console):
    clients = []

    def make(**options) -> Client:
        options.setdefault("flush_interval", 0.05)
        client = Client(console.url, console.token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=5)


def test_get_gives_the_version_with_model_and_parameters_and_a_cache_hit_sends_no_request(make_client):
    transport = CountingTransport()
    client = make_client(ttl=60, transport=transport)

    prompt = client.prompts.get("greeting", label="production")

    assert (prompt.name, prompt.team, prompt.label, prompt.version) == ("greeting", "sdk", "production", 1)
    assert prompt.model == "gemini-2.5-flash"
    assert prompt.parameters == {"temperature": 0.2, "max_output_tokens": 256}
    assert prompt.variables == ("company", "items", "name", "vip")
    assert len(transport.sent) == 1
    for _ in range(1000):
        assert client.prompts.get("greeting", label="production") is prompt
    assert len(transport.sent) == 1


def test_an_expired_entry_is_revalidated_with_its_etag_and_a_304_keeps_the_version(make_client):
    transport = CountingTransport()
    client = make_client(ttl=0, stale_while_revalidate=0, transport=transport)

    first = client.prompts.get("greeting")
    second = client.prompts.get("greeting")

    assert [status for _, status in transport.sent] == [200, 304]
    assert second is first


def test_stale_while_revalidate_answers_at_once_and_refreshes_in_the_background(make_client):
    transport = CountingTransport()
    client = make_client(ttl=0.2, stale_while_revalidate=60, transport=transport)
    prompt = client.prompts.get("greeting")
    time.sleep(0.3)
    transport.delay = 1.0  # the console is slow now: the caller must not wait for it

    started = time.perf_counter()
    assert client.prompts.get("greeting") is prompt
    assert time.perf_counter() - started < 0.5

    deadline = time.monotonic() + 10
    while len(transport.sent) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert transport.sent[-1][1] == 304  # revalidated in the background, with the ETag
    assert len(transport.sent) == 2  # one refresh, however many gets meanwhile


def test_console_stopped_serves_the_last_known_good_version(console, make_client):
    client = make_client(ttl=0.1, stale_while_revalidate=0, retry_after_error=0.1)
    prompt = client.prompts.get("greeting")
    console.stop_web()
    time.sleep(0.2)

    for _ in range(3):
        assert client.prompts.get("greeting") == prompt
        time.sleep(0.15)
    with pytest.raises(ConsoleUnavailable):
        client.prompts.get("never-fetched")


class SlowTransport(httpx.HTTPTransport):
    """The real HTTP transport after `delay` seconds (a console that is slow to fail, as behind a load
    balancer that waits for it), recording when each request started and how many were in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.started: list[float] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.started.append(time.monotonic())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return super().handle_request(request)
        finally:
            with self.lock:
                self.in_flight -= 1


def test_with_the_console_down_callers_get_the_last_known_good_at_once_and_one_request_retries(
    console, make_client
):
    transport = SlowTransport()
    client = make_client(ttl=0.1, stale_while_revalidate=0, retry_after_error=0.3, transport=transport)
    prompt = client.prompts.get("greeting")
    console.stop_web()
    transport.delay = 1.0
    time.sleep(0.2)
    assert client.prompts.get("greeting") == prompt  # this caller waits: the console was not known down
    transport.started.clear()
    transport.most_in_flight = 0

    slowest: list[float] = []
    served: list[object] = []

    def call_for(seconds: float) -> None:
        worst = 0.0
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            started = time.monotonic()
            served.append(client.prompts.get("greeting"))
            worst = max(worst, time.monotonic() - started)
            time.sleep(0.01)
        slowest.append(worst)

    threads = [threading.Thread(target=call_for, args=(3.0,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(slowest) == 8 and max(slowest) < 0.5  # none waited for the console (1 s to fail)
    assert served and all(p is prompt for p in served)
    # Retried in the background, one request at a time, each retry_after_error after the last failure.
    assert 1 <= len(transport.started) <= 3
    assert transport.most_in_flight == 1
    gaps = [b - a for a, b in zip(transport.started, transport.started[1:], strict=False)]
    assert all(gap >= 1.0 + 0.3 - 0.05 for gap in gaps)


def test_concurrent_first_gets_send_one_request(make_client):
    transport = SlowTransport()
    transport.delay = 0.5
    client = make_client(ttl=60, transport=transport)

    with ThreadPoolExecutor(8) as pool:
        prompts = list(pool.map(lambda _: client.prompts.get("greeting"), range(8)))

    assert len(transport.started) == 1
    assert all(p is prompts[0] for p in prompts) and prompts[0].version == 1


def test_concurrent_first_async_gets_send_one_request_that_a_cancelled_caller_does_not_cancel(console):
    started = []

    class Slow(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport()

        async def handle_async_request(self, request):
            started.append(request.url.params.get("label"))
            await asyncio.sleep(0.3)
            return await self.inner.handle_async_request(request)

    async def main():
        async with AsyncClient(console.url, console.token, ttl=60, transport=Slow()) as client:
            first = asyncio.create_task(client.prompts.get("greeting"))
            await asyncio.sleep(0.05)
            waiting = [asyncio.create_task(client.prompts.get("greeting")) for _ in range(7)]
            await asyncio.sleep(0.05)
            first.cancel()  # the caller that started the request goes away: the others still get its answer
            prompts = await asyncio.gather(*waiting)
            missing = await asyncio.gather(
                *(client.prompts.get("greeting", label="no-such-label") for _ in range(4)),
                return_exceptions=True,
            )
            return first.cancelled(), prompts, missing

    # A thread of its own: a browser test earlier in this process may leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        cancelled, prompts, missing = pool.submit(asyncio.run, main()).result(timeout=60)

    assert cancelled
    assert started == ["production", "no-such-label"]
    assert prompts[0].version == 1 and all(p is prompts[0] for p in prompts)
    assert all(isinstance(error, PromptNotFound) for error in missing)


def test_a_cold_start_with_the_console_down_is_served_from_the_disk_cache(console, make_client, tmp_path):
    warm = make_client(cache_dir=tmp_path / "prompts")
    prompt = warm.prompts.get("greeting")
    console.stop_web()

    cold = make_client(cache_dir=tmp_path / "prompts")  # a new process, same cache folder
    assert cold.prompts.get("greeting") == prompt
    assert cold.prompts.get("greeting").render(
        company="Acme", name="Ada", vip=False, items=[]
    ) == prompt.render(company="Acme", name="Ada", vip=False, items=[])
    with pytest.raises(ConsoleUnavailable):
        make_client().prompts.get("greeting")  # no disk cache: nothing to serve


def test_the_disk_cache_etag_is_revalidated_on_a_cold_start(make_client, tmp_path):
    make_client(cache_dir=tmp_path / "prompts").prompts.get("greeting")
    transport = CountingTransport()

    make_client(cache_dir=tmp_path / "prompts", transport=transport).prompts.get("greeting")

    assert [status for _, status in transport.sent] == [304]


def test_a_spent_hard_budget_raises_a_typed_error_that_names_it(make_client):
    client = make_client(app="capped-app")

    with pytest.raises(BudgetExhausted) as raised:
        client.prompts.get("greeting")

    assert raised.value.status == 429
    assert raised.value.budget == "capped-app monthly"
    assert raised.value.spend is not None and raised.value.period_end
    with pytest.raises(BudgetExhausted):  # remembered: not hidden by the cache
        client.prompts.get("greeting")
    assert make_client(app="other-app").prompts.get("greeting").version == 1


def test_a_missing_prompt_or_label_is_a_not_found_error(make_client):
    client = make_client()
    with pytest.raises(PromptNotFound):
        client.prompts.get("no-such-prompt")
    with pytest.raises(PromptNotFound):
        client.prompts.get("greeting", label="no-such-label")


def test_concurrent_gets_of_a_cached_prompt_are_safe(make_client):
    client = make_client(ttl=0.01, stale_while_revalidate=60)
    expected = client.prompts.get("greeting")
    seen = []

    def hammer():
        for _ in range(2000):
            seen.append(client.prompts.get("greeting").version)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(seen) == {expected.version}


VARIABLE_SETS = [
    {"company": "Acme", "name": "Ada", "vip": True, "items": ["tea", "cake"]},
    {"company": "Acme & Co <b>", "name": "José Ñúñez", "vip": False, "items": []},
    {"company": "", "name": "  spaces  ", "vip": None, "items": ["a"]},
    {"company": 42, "name": 3.5, "vip": 0, "items": ["x", "y", "z"]},
    {"company": "{{ not a template }}", "name": "line\nbreak", "vip": "yes", "items": ["ß"]},
]


@pytest.mark.parametrize("variables", VARIABLE_SETS)
def test_render_gives_what_the_console_renders(console, make_client, variables):
    prompt = make_client().prompts.get("greeting")

    answer = httpx.post(
        f"{console.url}/api/v1/prompts/greeting/render",
        json={"label": "production", "variables": variables},
        headers={"Authorization": f"Bearer {console.token}"},
    )

    assert answer.status_code == 200, answer.text
    assert prompt.render(**variables) == answer.json()["messages"]


@pytest.mark.parametrize(
    ("variables", "missing", "unknown"),
    [
        ({"company": "Acme", "name": "Ada", "vip": True}, ["items"], []),
        ({"company": "Acme", "name": "Ada", "vip": True, "items": [], "extra": 1}, [], ["extra"]),
    ],
)
def test_render_refuses_missing_and_unknown_variables_as_the_console_does(
    console, make_client, variables, missing, unknown
):
    prompt = make_client().prompts.get("greeting")

    answer = httpx.post(
        f"{console.url}/api/v1/prompts/greeting/render",
        json={"label": "production", "variables": variables},
        headers={"Authorization": f"Bearer {console.token}"},
    )
    with pytest.raises(VariablesMismatch) as raised:
        prompt.render(**variables)

    assert answer.status_code == 422
    assert (raised.value.missing, raised.value.unknown) == (missing, unknown)
    assert str(raised.value) in answer.json()["error"]["message"]


EXHAUST = """
from decimal import Decimal
from apps.accounts.models import Team, User
from apps.costs.models import BudgetState
from apps.costs.services import budget_create
budget = budget_create(
    actor=User.objects.get(username="reviewer"), team=Team.objects.get(slug="sdk"), name="late-app daily",
    amount=Decimal("5"), period="day", hard_limit=True, app="late-app",
)
BudgetState.objects.filter(budget=budget).update(exhausted=True, spend=Decimal("5.5"))
"""


def test_a_budget_spent_while_the_prompt_is_cached_is_raised_once_revalidated(console, make_client):
    client = make_client(app="late-app", ttl=0.2, stale_while_revalidate=60)
    prompt = client.prompts.get("greeting")
    console.manage("shell", "-c", EXHAUST)

    served_stale = 0
    deadline = time.monotonic() + 60
    with pytest.raises(BudgetExhausted) as raised:
        while time.monotonic() < deadline:
            assert client.prompts.get("greeting") == prompt  # meanwhile: stale, revalidated in the background
            served_stale += 1
            time.sleep(0.1)
    assert raised.value.budget == "late-app daily"
    assert served_stale > 0
