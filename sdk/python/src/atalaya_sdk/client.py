"""Client and AsyncClient: `prompts.get`, `log`, `feedback`, `trace`."""

from __future__ import annotations

import asyncio
import atexit
import functools
import inspect
import itertools
import os
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx

from atalaya_sdk.errors import ApiError, ConsoleUnavailable
from atalaya_sdk.prompts import AsyncPrompts, Prompt, Prompts
from atalaya_sdk.shipper import LogShipper

F = TypeVar("F", bound=Callable[..., Any])

_USER_AGENT = "atalaya-sdk-python/0.1.0"
_EVENT_FIELDS = frozenset(
    {
        "request_id",
        "started_at",
        "ended_at",
        "app",
        "prompt",
        "prompt_version",
        "model",
        "input",
        "output",
        "tokens_in",
        "tokens_out",
        "latency_ms",
        "status",
        "error",
        "end_user",
        "metadata",
    }
)


def _settings(base_url: str | None, token: str | None) -> tuple[str, str]:
    base_url = base_url or os.environ.get("ATALAYA_URL", "")
    token = token or os.environ.get("ATALAYA_TOKEN", "")
    if not base_url or not token:
        raise ValueError("Give base_url and token (or set ATALAYA_URL and ATALAYA_TOKEN).")
    return base_url.rstrip("/"), token


class _Base:
    """What both clients share: the log queue (thread-based, so `log` is the same call in async code)."""

    _shipper: LogShipper

    def _start(self, *, base_url: str, token: str, app: str, options: dict[str, Any]) -> None:
        self.app = app
        self._exit_timeout = options.pop("exit_timeout", 10.0)
        self._ids = itertools.count(1)
        self._id_prefix = secrets.token_hex(8)
        self._ship_http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT},
            timeout=options.pop("log_timeout", 10.0),
            transport=options.pop("log_transport", None),
        )
        self._shipper = LogShipper(self._ship_http, **options)
        # The shipper, not the client: a client dropped early still has its events delivered at exit.
        atexit.register(self._shipper.close, self._exit_timeout)

    def new_request_id(self) -> str:
        """A request id unique to this call (a random per-client prefix and a counter)."""
        return f"{self._id_prefix}-{next(self._ids):x}"

    def log(
        self,
        *,
        model: str,
        input: Any,
        output: str | None = None,
        prompt: Prompt | str | None = None,
        request_id: str | None = None,
        started_at: Any = None,
        **fields: Any,
    ) -> str:
        """Queue one call's log event and return its request id (for `feedback`). Never blocks, never raises
        for the console's sake: the event is shipped in the background (see `atalaya_sdk.shipper`).

        `input` is the messages (`[{"role", "content"}]`, e.g. `prompt.render(...)`) or a string;
        `prompt` a Prompt (its name and version are logged) or a name; timestamps are datetimes or
        epoch seconds (`started_at` defaults to now). Other fields: `ended_at`, `tokens_in`,
        `tokens_out`, `latency_ms`, `status`, `error`, `end_user`, `metadata`, `app`, `prompt_version`."""
        event: dict[str, Any] = {
            "request_id": request_id or f"{self._id_prefix}-{next(self._ids):x}",
            "started_at": started_at if started_at is not None else time.time(),
            "model": model,
            "input": input,
        }
        if output is not None:
            event["output"] = output
        if prompt is not None:
            if isinstance(prompt, Prompt):
                event["prompt"] = prompt.name
                event["prompt_version"] = prompt.version
            else:
                event["prompt"] = prompt
        if self.app and "app" not in fields:
            event["app"] = self.app
        if fields:
            unknown = fields.keys() - _EVENT_FIELDS
            if unknown:
                raise TypeError(f"log() got unknown fields: {', '.join(sorted(unknown))}")
            event.update((k, v) for k, v in fields.items() if v is not None)
        self._shipper.put(event)
        return event["request_id"]

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Ship (or spill) every event logged so far; True when nothing is left undelivered."""
        return self._shipper.flush(timeout)

    @property
    def log_stats(self) -> dict[str, int]:
        return self._shipper.stats.as_dict() | {"pending": self._shipper.pending}

    def trace(
        self, *, model: str, input: Any = None, prompt: Prompt | str | None = None, **fields: Any
    ) -> Trace:
        """Time a model call and log it when the block ends (status `error` and the exception, which is
        re-raised, if it fails). Set `call.output`, `call.tokens_in`, ... inside the block."""
        return Trace(self, model=model, input=input, prompt=prompt, fields=fields)

    def traced(
        self,
        *,
        model: str,
        prompt: Prompt | str | None = None,
        output: Callable[[Any], str] | None = None,
        **fields: Any,
    ) -> Callable[[F], F]:
        """Decorator: each call of the function (sync or async) is timed and logged, with its first
        argument (or `input=`) as the input and its return value (through `output`, else `str`) as the output."""

        def decorate(fn: F) -> F:
            def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Trace:
                given = kwargs.get("input", kwargs.get("messages", args[0] if args else ""))
                return Trace(self, model=model, input=given, prompt=prompt, fields=dict(fields))

            def finish(call: Trace, result: Any) -> Any:
                call.output = output(result) if output is not None else _text_of(result)
                return result

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    with start(args, kwargs) as call:
                        return finish(call, await fn(*args, **kwargs))

                return run_async  # type: ignore[return-value]

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as call:
                    return finish(call, fn(*args, **kwargs))

            return run  # type: ignore[return-value]

        return decorate

    def _feedback_body(
        self, request_id: str, thumbs: bool | None, score: int | None, comment: str, end_user: str
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": request_id, "end_user": end_user, "comment": comment}
        if thumbs is not None:
            body["thumbs"] = thumbs
        if score is not None:
            body["score"] = score
        return body


def _text_of(result: Any) -> str:
    if isinstance(result, str):
        return result
    text = getattr(result, "text", None)
    return text if isinstance(text, str) else str(result)


class Trace:
    """One timed model call (`client.trace(...)`), logged when the `with` / `async with` block ends."""

    def __init__(
        self, client: _Base, *, model: str, input: Any, prompt: Prompt | str | None, fields: dict[str, Any]
    ):
        self._client = client
        self.model = model
        self.input = input
        self.prompt = prompt
        self.output: str | None = None
        self.tokens_in: int | None = fields.pop("tokens_in", None)
        self.tokens_out: int | None = fields.pop("tokens_out", None)
        self.metadata: dict[str, Any] = fields.pop("metadata", None) or {}
        self.request_id = fields.pop("request_id", None) or client.new_request_id()
        self.status = "ok"
        self.fields = fields
        self.started_at = 0.0
        self._t0 = 0.0

    def __enter__(self) -> Trace:
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        elapsed = time.perf_counter() - self._t0
        error = None
        if exc is not None:
            self.status = "timeout" if isinstance(exc, TimeoutError | asyncio.TimeoutError) else "error"
            error = f"{type(exc).__name__}: {exc}"
        self._client.log(
            model=self.model,
            input=self.input if self.input is not None else "",
            output=self.output,
            prompt=self.prompt,
            request_id=self.request_id,
            started_at=self.started_at,
            ended_at=self.started_at + elapsed,
            latency_ms=round(elapsed * 1000),
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            status=self.status,
            error=error,
            metadata=self.metadata or None,
            **self.fields,
        )

    async def __aenter__(self) -> Trace:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def _raise_for(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        raise ApiError.from_response(response.status_code, body)
    return body if isinstance(body, dict) else {}


class Client(_Base):
    """The application's handle on the console.

        client = Client(base_url="https://atalaya.example.com", token="...", app="support-bot")
        prompt = client.prompts.get("greeting", label="production")
        messages = prompt.render(name="Ada")
        client.log(model=prompt.model, input=messages, output=answer, prompt=prompt)

    Options: `ttl` (seconds a resolved prompt is served without asking, default 10),
    `stale_while_revalidate` (seconds past that it is still served while refreshed in the background,
    default 300), `cache_dir` (disk cache of resolved prompts, for cold starts with the console down),
    `spill_dir` (where undeliverable logs wait, bounded by `max_spill_bytes`), `batch_size`,
    `flush_interval`, `max_queue`, `max_attempts`, `backoff_base`, `backoff_max`, `timeout`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        app: str | None = None,
        ttl: float = 10.0,
        stale_while_revalidate: float = 300.0,
        retry_after_error: float = 5.0,
        cache_dir: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        **log_options: Any,
    ):
        base_url, token = _settings(base_url, token)
        app = app if app is not None else os.environ.get("ATALAYA_APP", "")
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT},
            timeout=timeout,
            transport=transport,
        )
        self.prompts = Prompts(
            self._http,
            app=app,
            ttl=ttl,
            stale_while_revalidate=stale_while_revalidate,
            retry_after_error=retry_after_error,
            cache_dir=cache_dir,
        )
        self._start(base_url=base_url, token=token, app=app, options=log_options)

    def feedback(
        self,
        request_id: str,
        *,
        thumbs: bool | None = None,
        score: int | None = None,
        comment: str = "",
        end_user: str = "",
    ) -> dict[str, Any]:
        """End-user feedback on a logged call (idempotent per request id and end user). Raises ApiError
        on a refusal (e.g. 422 for a score outside 1–5), ConsoleUnavailable if the console is down."""
        body = self._feedback_body(request_id, thumbs, score, comment, end_user)
        for attempt in range(3):
            try:
                response = self._http.post("/api/v1/feedback/", json=body)
            except httpx.TransportError as exc:
                failure: str = str(exc)
            else:
                if response.status_code < 500:
                    return _raise_for(response)
                failure = f"HTTP {response.status_code}"
            time.sleep(0.2 * 2**attempt)
        raise ConsoleUnavailable(f"Feedback not sent: {failure}")

    def close(self, timeout: float = 10.0) -> None:
        """Flush the logs and release the connections (also done at exit)."""
        self._shipper.close(timeout)
        self._http.close()
        self._ship_http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncClient(_Base):
    """Client for asyncio code: `await client.prompts.get(...)`, `await client.feedback(...)`,
    `async with client.trace(...)`; `client.log(...)` is the same non-blocking call as in Client."""

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        *,
        app: str | None = None,
        ttl: float = 10.0,
        stale_while_revalidate: float = 300.0,
        retry_after_error: float = 5.0,
        cache_dir: str | os.PathLike[str] | None = None,
        timeout: float = 5.0,
        transport: httpx.AsyncBaseTransport | None = None,
        **log_options: Any,
    ):
        base_url, token = _settings(base_url, token)
        app = app if app is not None else os.environ.get("ATALAYA_APP", "")
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": _USER_AGENT},
            timeout=timeout,
            transport=transport,
        )
        self.prompts = AsyncPrompts(
            self._http,
            app=app,
            ttl=ttl,
            stale_while_revalidate=stale_while_revalidate,
            retry_after_error=retry_after_error,
            cache_dir=cache_dir,
        )
        self._start(base_url=base_url, token=token, app=app, options=log_options)

    async def feedback(
        self,
        request_id: str,
        *,
        thumbs: bool | None = None,
        score: int | None = None,
        comment: str = "",
        end_user: str = "",
    ) -> dict[str, Any]:
        body = self._feedback_body(request_id, thumbs, score, comment, end_user)
        for attempt in range(3):
            try:
                response = await self._http.post("/api/v1/feedback/", json=body)
            except httpx.TransportError as exc:
                failure: str = str(exc)
            else:
                if response.status_code < 500:
                    return _raise_for(response)
                failure = f"HTTP {response.status_code}"
            await asyncio.sleep(0.2 * 2**attempt)
        raise ConsoleUnavailable(f"Feedback not sent: {failure}")

    async def aflush(self, timeout: float | None = 30.0) -> bool:
        return await asyncio.to_thread(self._shipper.flush, timeout)

    async def aclose(self, timeout: float = 10.0) -> None:
        await asyncio.to_thread(self._shipper.close, timeout)
        await self._http.aclose()
        self._ship_http.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()
