"""Client.log, trace, feedback and the async client against a live console: shipping, spilling while
the console is down, delivery exactly once when it is back, flush at exit, retries through faults."""

import asyncio
import json
import os
import secrets
import stat
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from atalaya_sdk import ApiError, AsyncClient, Client

from tests.sdk.conftest import ROOT
from tests.sdk.faultproxy import FaultProxy

pytestmark = pytest.mark.integration  # a live console: gunicorn and a Celery worker

MESSAGES = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def prefix() -> str:
    return f"t{secrets.token_hex(4)}-"


@pytest.fixture
def make_client(console):
    clients = []

    def make(url: str | None = None, **options) -> Client:
        options.setdefault("flush_interval", 0.05)
        client = Client(url or console.url, console.token, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close(timeout=5)


def log_many(client: Client, prefix: str, count: int, start: int = 0) -> list[str]:
    return [
        client.log(
            request_id=f"{prefix}{i:05d}",
            model="gemini-2.5-flash",
            input=MESSAGES,
            output=f"answer {i}",
            tokens_in=5,
            tokens_out=2,
        )
        for i in range(start, start + count)
    ]


def test_logged_events_are_shipped_and_stored(console, make_client, prefix):
    client = make_client(app="support-bot")
    prompt = client.prompts.get("greeting")

    request_id = client.log(
        request_id=f"{prefix}one",
        model=prompt.model,
        input=prompt.render(company="Acme", name="Ada", vip=False, items=[]),
        output="Hello Ada",
        prompt=prompt,
        latency_ms=120,
        metadata={"channel": "web"},
    )
    assert client.flush(timeout=30)

    assert request_id == f"{prefix}one"
    assert client.log_stats["accepted"] == 1
    console.wait_stored(prefix, 1)
    row = console.query(
        "SELECT app, prompt, prompt_version, model, output, latency_ms, status FROM logs_logevent WHERE request_id = ?",
        (request_id,),
    )
    assert row == [("support-bot", "greeting", 1, "gemini-2.5-flash", "Hello Ada", 120, "ok")]


def test_console_down_spills_to_disk_and_back_up_delivers_exactly_once(
    console, make_client, prefix, tmp_path
):
    spill = tmp_path / "spill"
    client = make_client(spill_dir=spill, max_attempts=2, backoff_base=0.05, batch_size=25)
    log_many(client, prefix, 30)
    assert client.flush(timeout=30)
    console.stop_web()

    log_many(client, prefix, 70, start=30)
    assert not client.flush(timeout=30)  # nothing lost, but not delivered either: spilled

    stats = client.log_stats
    assert stats["spilled"] == 70 and stats["pending"] == 0 and stats["dropped"] == 0
    assert sum(len(json.loads(p.read_bytes())["events"]) for p in spill.glob("*.json")) == 70
    # Raw, unredacted texts: private to the application's user.
    assert stat.S_IMODE(spill.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in spill.glob("*.json")} == {0o600}
    assert len(console.rows_per_request_id(prefix)) == 30

    console.start_web()
    assert client.flush(timeout=30)

    assert client.log_stats["unspilled"] == 70
    assert not list(spill.glob("*.json"))
    rows = console.rows_per_request_id(prefix)
    assert len(rows) == 100 and set(rows.values()) == {1}
    assert client.log_stats["accepted"] == 100 and client.log_stats["duplicate"] == 0
    console.wait_stored(prefix, 100)


def test_log_never_blocks_or_raises_and_drops_and_counts_past_the_bound(make_client):
    client = make_client(url="http://127.0.0.1:9", max_queue=50, flush_interval=60)  # nothing listens there

    started = time.perf_counter()
    for i in range(80):
        client.log(model="m", input="x", request_id=f"bound-{i}")
    elapsed = time.perf_counter() - started

    assert elapsed < 0.05
    assert client.log_stats["dropped"] == 30
    assert client.log_stats["pending"] == 50


def run_script(console, body: str) -> subprocess.CompletedProcess:
    script = "import sys\nfrom atalaya_sdk import Client\n" + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", script, console.url, console.token],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_a_process_exiting_flushes_its_logs(console, prefix):
    done = run_script(
        console,
        f"""
        client = Client(sys.argv[1], sys.argv[2], flush_interval=60)
        for i in range(1200):
            client.log(request_id="{prefix}%05d" % i, model="m", input="hello", output="hi")
        del client  # dropped before exit: its events are still delivered
        import gc
        gc.collect()
        """,
    )

    assert done.returncode == 0, done.stderr
    rows = console.rows_per_request_id(prefix)
    assert len(rows) == 1200 and set(rows.values()) == {1}


def test_a_process_exiting_with_the_console_down_spills_and_the_next_process_delivers(
    console, prefix, tmp_path
):
    console.stop_web()
    down = run_script(
        console,
        f"""
        client = Client(sys.argv[1], sys.argv[2], spill_dir=r"{tmp_path}", backoff_base=0.05)
        for i in range(40):
            client.log(request_id="{prefix}%05d" % i, model="m", input="hello")
        """,
    )
    assert down.returncode == 0, down.stderr
    assert list(tmp_path.glob("*.json"))

    console.start_web()
    back = run_script(
        console,
        f"""
        client = Client(sys.argv[1], sys.argv[2], spill_dir=r"{tmp_path}")
        assert client.flush(timeout=30), client.log_stats
        print(client.log_stats["unspilled"])
        """,
    )

    assert back.returncode == 0, back.stderr
    assert back.stdout.strip() == "40"
    rows = console.rows_per_request_id(prefix)
    assert len(rows) == 40 and set(rows.values()) == {1}


def test_retries_through_dropped_connections_500s_and_429s_never_duplicate(console, make_client, prefix):
    faults = ["drop_after", "500", "drop_before", "429", "pass", "drop_after", "drop_after", "500", "pass"]
    with FaultProxy(console.port, faults) as proxy:
        client = make_client(url=proxy.url, batch_size=50, max_attempts=8, backoff_base=0.02, backoff_max=2)
        log_many(client, prefix, 200)
        assert client.flush(timeout=60)

    actions = [action for _, action, _ in proxy.events]
    assert actions[: len(faults)] == faults
    stats = client.log_stats
    # Batch 1 is stored but its answer dropped, then resent through a 500, a dropped request and a 429:
    # the resend that passes is a duplicate. Batch 2: stored, its answer dropped twice, a 500, then a
    # duplicate. Batches 3 and 4 pass at once. The console counts each event once either way.
    assert stats["accepted"] + stats["duplicate"] == 200
    assert stats["duplicate"] == 2 * 50
    assert stats["dropped"] == 0 and stats["rejected"] == 0
    rows = console.rows_per_request_id(prefix)
    assert len(rows) == 200 and set(rows.values()) == {1}
    # Retry-After: 1 was honoured before the next try.
    at_429 = next(t for t, action, _ in proxy.events if action == "429")
    after = next(t for t, _, _ in proxy.events if t > at_429)
    assert after - at_429 >= 0.95


def test_an_event_that_cannot_be_encoded_or_that_the_console_refuses_is_dropped_alone(
    console, make_client, prefix
):
    client = make_client(batch_size=500, flush_interval=60)
    log_many(client, prefix, 20)
    circular: dict = {}
    circular["self"] = circular
    client.log(request_id=f"{prefix}nan", model="m", input="x", metadata={"score": float("nan")})
    client.log(request_id=f"{prefix}tuple", model="m", input="x", metadata={("a", "b"): 1})
    client.log(request_id=f"{prefix}cycle", model="m", input="x", metadata=circular)
    # Encodable, but the console cannot parse a lone surrogate: it refuses the whole batch with 400.
    client.log(request_id=f"{prefix}surrogate", model="m", input="x", output="bad \ud800 text")
    log_many(client, prefix, 20, start=20)

    assert client.flush(timeout=60)

    stats = client.log_stats
    assert stats["accepted"] == 40
    assert stats["invalid"] == 3  # never sent
    assert stats["rejected"] == 1  # the console refused it, alone
    assert stats["dropped"] == 0
    rows = console.rows_per_request_id(prefix)
    assert set(rows) == {f"{prefix}{i:05d}" for i in range(40)}


def test_a_spilled_batch_the_console_keeps_refusing_is_set_aside_and_does_not_hold_back_the_rest(
    console, make_client, prefix, tmp_path
):
    spill = tmp_path / "spill"
    poison = f"{prefix}poison"
    with FaultProxy(console.port, [], poison=poison) as proxy:
        client = make_client(
            url=proxy.url, spill_dir=spill, max_attempts=1, backoff_max=2, max_spill_attempts=3
        )
        client.log(request_id=poison, model="m", input="x")
        log_many(client, prefix, 4)
        assert not client.flush(timeout=30)  # answered 500: spilled, and the circuit opens
        assert client.log_stats["spilled"] == 5

        # Logged while the circuit is open: spilled behind the refused batch, then delivered without
        # anyone calling flush(), while the refused batch keeps failing.
        log_many(client, prefix, 30, start=10)
        console.wait_stored(prefix, 30, timeout=30)

        deadline = time.monotonic() + 30
        while client.log_stats["set_aside"] == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        log_many(client, prefix, 10, start=100)
        assert client.flush(timeout=30)  # nothing left: the refused batch is set aside

    stats = client.log_stats
    assert stats["set_aside"] == 5 and stats["dropped"] == 0
    assert stats["accepted"] == 40
    (bad,) = spill.glob("*.bad")
    assert bad.name.endswith(".f3.bad")
    assert {e["request_id"] for e in json.loads(bad.read_bytes())["events"]} == {poison} | {
        f"{prefix}{i:05d}" for i in range(4)
    }
    refused = [action for _, action, _ in proxy.events if action == "500"]
    assert len(refused) == 1 + 3  # the first send, then three tries from the spill folder
    rows = console.rows_per_request_id(prefix)
    assert len(rows) == 40 and poison not in rows


def test_trace_times_the_call_and_logs_errors_as_such(console, make_client, prefix):
    client = make_client()
    prompt = client.prompts.get("greeting")
    messages = prompt.render(company="Acme", name="Ada", vip=True, items=[])

    with client.trace(model=prompt.model, input=messages, prompt=prompt, request_id=f"{prefix}ok") as call:
        time.sleep(0.05)
        call.output = "Hello Ada"
        call.tokens_in, call.tokens_out = 12, 3
    with (
        pytest.raises(TimeoutError),
        client.trace(model=prompt.model, input=messages, request_id=f"{prefix}late"),
    ):
        raise TimeoutError("model took too long")

    @client.traced(model="gpt-4o-mini", request_id=f"{prefix}deco")
    def ask(question: str) -> str:
        return question.upper()

    assert ask("hi") == "HI"
    assert client.flush(timeout=30)
    console.wait_stored(prefix, 3)
    rows = {
        r[0]: r[1:]
        for r in console.query(
            "SELECT request_id, status, latency_ms, output, tokens_in, prompt_version, error FROM logs_logevent "
            "WHERE request_id LIKE ?",
            (prefix + "%",),
        )
    }
    status, latency, output, tokens_in, version, _ = rows[f"{prefix}ok"]
    assert (status, output, tokens_in, version) == ("ok", "Hello Ada", 12, 1)
    assert latency >= 50
    assert rows[f"{prefix}late"][0] == "timeout"
    assert "model took too long" in rows[f"{prefix}late"][5]
    assert rows[f"{prefix}deco"][:1] == ("ok",) and rows[f"{prefix}deco"][2] == "HI"


def test_feedback_on_a_logged_call(make_client, prefix):
    client = make_client()
    request_id = client.log(model="m", input="hello", request_id=f"{prefix}fb")
    client.flush()

    first = client.feedback(request_id, thumbs=False, comment="Wrong order", end_user="u-1")
    again = client.feedback(request_id, thumbs=False, comment="Wrong order", end_user="u-1")
    with pytest.raises(ApiError) as refused:
        client.feedback(request_id, score=9, end_user="u-1")

    assert (first["request_id"], first["thumbs"], first["changed"]) == (request_id, False, True)
    assert again["changed"] is False and again["id"] == first["id"]
    assert refused.value.status == 422 and refused.value.code == "invalid_score"


def test_the_async_client(console, prefix):
    async def main() -> None:
        transport = httpx.AsyncHTTPTransport()
        sent = []

        class Counting(httpx.AsyncBaseTransport):
            async def handle_async_request(self, request):
                sent.append(request.url.path)
                return await transport.handle_async_request(request)

        async with AsyncClient(
            console.url, console.token, ttl=60, transport=Counting(), flush_interval=0.05
        ) as client:
            prompt = await client.prompts.get("greeting")
            assert await client.prompts.get("greeting") is prompt
            assert len(sent) == 1
            async with client.trace(
                model=prompt.model, input="hi", prompt=prompt, request_id=f"{prefix}a"
            ) as call:
                await asyncio.sleep(0.01)
                call.output = "hello"

            @client.traced(model="m", request_id=f"{prefix}b")
            async def answer(text: str) -> str:
                return text[::-1]

            assert await answer("abc") == "cba"
            assert await client.aflush()
            feedback = await client.feedback(f"{prefix}a", score=5)
            assert feedback["score"] == 5

    # A thread of its own: a browser test earlier in this process may leave an event loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, main()).result(timeout=120)
    rows = console.rows_per_request_id(prefix)
    assert rows == {f"{prefix}a": 1, f"{prefix}b": 1}
    assert Path(console.db).exists()
