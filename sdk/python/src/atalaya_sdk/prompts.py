"""Prompts as the console resolves them, and the in-process cache in front of the resolve endpoint.

The hot path (`get` of a fresh entry) is one dict lookup and one monotonic clock compare. Past `ttl`
the cached version is still served at once while one background request revalidates it with its ETag
(a 304 costs no body); past `ttl + stale_while_revalidate` the caller waits for the revalidation (one
request per prompt: concurrent callers wait for its answer). When the console cannot be reached (or
answers 5xx, or rate-limits) the last known good version is served, from memory or, on a cold start,
from the optional disk cache, and keeps being served at once for as long as the console fails: one
background request at a time retries, `retry_after_error` seconds after the last failed one. A spent
hard budget (429 `budget_exhausted`) is never hidden: `get` raises BudgetExhausted, naming the budget,
until a revalidation says otherwise.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from atalaya_sdk._templating import compile_template, render_compiled
from atalaya_sdk.errors import ApiError, AtalayaError, BudgetExhausted, ConsoleUnavailable

logger = logging.getLogger("atalaya_sdk")


@dataclass(frozen=True)
class Prompt:
    """One version of a prompt, as a label pointed at it when it was resolved."""

    name: str
    team: str
    label: str
    version: int
    messages: tuple[dict[str, str], ...]
    variables: tuple[str, ...]
    model: str
    parameters: dict[str, Any]
    content_hash: str
    etag: str
    _compiled: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Prompt:
        return cls(
            name=payload["name"],
            team=payload.get("team", ""),
            label=payload.get("label", ""),
            version=int(payload["version"]),
            messages=tuple({"role": m["role"], "template": m["template"]} for m in payload["messages"]),
            variables=tuple(payload.get("variables", ())),
            model=payload.get("model", ""),
            parameters=dict(payload.get("parameters") or {}),
            content_hash=payload.get("content_hash", ""),
            etag=payload.get("etag", ""),
        )

    def to_payload(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "team": self.team,
            "label": self.label,
            "version": self.version,
            "messages": [dict(m) for m in self.messages],
            "variables": list(self.variables),
            "model": self.model,
            "parameters": self.parameters,
            "content_hash": self.content_hash,
            "etag": self.etag,
        }

    def render(self, **variables: Any) -> list[dict[str, str]]:
        """The messages with these variables placed, as `[{"role", "content"}]`; exactly the variables the
        template uses (else VariablesMismatch), rendered by the console's rules (else TemplateProblem)."""
        if not self._compiled:
            templates = [compile_template(m["template"], i) for i, m in enumerate(self.messages)]
            self._compiled[:] = [[m["role"] for m in self.messages], templates, frozenset(self.variables)]
        roles, templates, expected = self._compiled
        return render_compiled(roles, templates, variables, expected)


class _Entry:
    __slots__ = ("error", "fresh_until", "prompt", "stale_until")

    def __init__(
        self, prompt: Prompt | None, fresh_until: float, stale_until: float, error: AtalayaError | None = None
    ):
        self.prompt = prompt
        self.fresh_until = fresh_until
        self.stale_until = stale_until
        self.error = error


Key = tuple[str, str, str]


class _Transient(Exception):
    """The console is unreachable, failing or rate-limiting: serve the last known good version."""


class _CacheCore:
    """What the sync and async caches share: the entries, the disk cache, reading an answer."""

    def __init__(
        self, *, app: str, ttl: float, stale_while_revalidate: float, retry_after_error: float, cache_dir: Any
    ):
        self._app = app
        self._ttl = ttl
        self._swr = stale_while_revalidate
        self._retry = retry_after_error
        self._entries: dict[Key, _Entry] = {}
        self._refreshing: set[Key] = set()
        self._flights: dict[Key, threading.Lock] = {}
        self._lock = threading.Lock()
        self._dir = Path(cache_dir) if cache_dir else None
        if self._dir is not None:
            self._dir.mkdir(parents=True, exist_ok=True)
        self.requests = 0  # resolve requests sent to the console (tests and metrics read it)

    @staticmethod
    def _path(key: Key) -> tuple[str, dict[str, str]]:
        name, label, app = key
        query = {"label": label} | ({"app": app} if app else {})
        return f"/api/v1/prompts/{quote(name, safe='')}/resolve", query

    def _disk_file(self, key: Key) -> Path | None:
        if self._dir is None:
            return None
        digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
        return self._dir / f"prompt-{digest}.json"

    def _disk_read(self, key: Key) -> Prompt | None:
        path = self._disk_file(key)
        if path is None or not path.exists():
            return None
        try:
            return Prompt.from_payload(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            logger.warning("atalaya: unreadable prompt cache file %s, ignored", path)
            return None

    def _disk_write(self, key: Key, prompt: Prompt) -> None:
        path = self._disk_file(key)
        if path is None:
            return
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as out:
                json.dump(prompt.to_payload(), out)
            os.replace(tmp, path)
        except OSError as exc:
            logger.warning("atalaya: could not write the prompt cache %s: %s", path, exc)

    def _interpret(self, key: Key, known: Prompt | None, response: httpx.Response) -> Prompt:
        """The prompt this answer gives; raises _Transient or the console's refusal."""
        status = response.status_code
        if status == 304 and known is not None:
            return known
        if status == 200:
            try:
                prompt = Prompt.from_payload(response.json())
            except (ValueError, KeyError, TypeError) as exc:  # not the console's answer (a proxy's page?)
                raise _Transient(f"unreadable answer: {exc!r}") from None
            if known is None or prompt.etag != known.etag:
                self._disk_write(key, prompt)
            return prompt
        try:
            body = response.json()
        except ValueError:
            body = None
        error = ApiError.from_response(status, body)
        if status >= 500 or (status == 429 and not isinstance(error, BudgetExhausted)):
            raise _Transient(str(error))
        raise error

    def _request(
        self, key: Key, entry: _Entry | None
    ) -> tuple[Prompt | None, str, dict[str, str], dict[str, str]]:
        """What a revalidation sends: the version known (memory, then disk), the path, the query, and
        its ETag as If-None-Match. Counted in `requests`."""
        known = self._known(key, entry)
        path, query = self._path(key)
        headers = {"If-None-Match": known.etag} if known is not None and known.etag else {}
        self.requests += 1
        return known, path, query, headers

    def _settle(
        self, key: Key, entry: _Entry | None, known: Prompt | None, response: httpx.Response
    ) -> Prompt:
        """The console's answer into the cache: the prompt it gives, the last known good on a transient
        failure, or its refusal remembered and raised."""
        try:
            prompt = self._interpret(key, known, response)
        except _Transient as exc:
            return self._keep_serving(key, entry, exc)
        except ApiError as exc:
            self._store(key, None, exc)
            raise
        self._store(key, prompt)
        return prompt

    def _store(self, key: Key, prompt: Prompt | None, error: AtalayaError | None = None) -> _Entry:
        now = time.monotonic()
        entry = _Entry(prompt, now + self._ttl, now + self._ttl + self._swr, error)
        self._entries[key] = entry
        return entry

    def _keep_serving(self, key: Key, entry: _Entry | None, reason: object) -> Prompt:
        """The console failed: the last known good version (memory, then disk). It is fresh for
        `retry_after_error`, then stale for as long as the console keeps failing: callers get it at
        once while one background request (at a time) retries."""
        prompt = entry.prompt if entry is not None and entry.error is None else None
        if prompt is None:
            prompt = self._disk_read(key)
        if prompt is None:
            raise ConsoleUnavailable(f"Cannot resolve {key[0]!r} ({key[1]}): {reason}")
        logger.warning("atalaya: serving %s v%s (last known good): %s", prompt.name, prompt.version, reason)
        self._entries[key] = _Entry(prompt, time.monotonic() + self._retry, math.inf)
        return prompt

    def _known(self, key: Key, entry: _Entry | None) -> Prompt | None:
        if entry is not None and entry.prompt is not None:
            return entry.prompt
        return self._disk_read(key)

    def _claim_refresh(self, key: Key) -> bool:
        with self._lock:
            if key in self._refreshing:
                return False
            self._refreshing.add(key)
            return True

    def _release_refresh(self, key: Key) -> None:
        with self._lock:
            self._refreshing.discard(key)

    def _flight(self, key: Key) -> threading.Lock:
        """The lock a caller holds while it waits for the console: one blocking request per prompt."""
        with self._lock:
            return self._flights.setdefault(key, threading.Lock())

    def invalidate(self, name: str | None = None) -> None:
        """Forget cached versions (of one prompt, or all) in memory; the next get asks the console."""
        for key in list(self._entries):
            if name is None or key[0] == name:
                self._entries.pop(key, None)


class Prompts(_CacheCore):
    """`client.prompts`: `get(name, label=...)` with the cache described in this module."""

    def __init__(self, http: httpx.Client, **options: Any):
        super().__init__(**options)
        self._http = http

    def get(self, name: str, label: str = "production", app: str | None = None) -> Prompt:
        entry = self._entries.get((name, label, self._app if app is None else app))
        if entry is not None and entry.fresh_until > time.monotonic() and entry.error is None:
            return entry.prompt  # type: ignore[return-value]
        return self._get_slow((name, label, self._app if app is None else app), entry)

    def _get_slow(self, key: Key, entry: _Entry | None) -> Prompt:
        now = time.monotonic()
        if entry is not None and entry.error is not None and entry.fresh_until > now:
            raise entry.error
        if entry is not None and entry.error is None and entry.stale_until > now:
            if self._claim_refresh(key):
                threading.Thread(target=self._background, args=(key, entry), daemon=True).start()
            return entry.prompt  # type: ignore[return-value]
        with self._flight(key):  # single flight: the others wait for this request's answer
            current = self._entries.get(key)
            if current is not entry and current is not None:
                return self.get(*key)  # answered while this caller waited
            return self._revalidate(key, entry)

    def _background(self, key: Key, entry: _Entry) -> None:
        try:
            self._revalidate(key, entry)
        except AtalayaError:
            pass  # stored in the entry (a refusal) or logged (unreachable): the next get sees it
        except Exception:
            logger.exception("atalaya: background revalidation of %r failed", key[0])
        finally:
            self._release_refresh(key)

    def _revalidate(self, key: Key, entry: _Entry | None) -> Prompt:
        known, path, query, headers = self._request(key, entry)
        try:
            response = self._http.get(path, params=query, headers=headers)
        except httpx.TransportError as exc:
            return self._keep_serving(key, entry, exc)
        return self._settle(key, entry, known, response)


class AsyncPrompts(_CacheCore):
    """`client.prompts` of AsyncClient: `await get(...)`; a fresh entry is answered without a request."""

    def __init__(self, http: httpx.AsyncClient, **options: Any):
        super().__init__(**options)
        self._http = http
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waits: dict[Key, asyncio.Task[Prompt]] = {}

    async def get(self, name: str, label: str = "production", app: str | None = None) -> Prompt:
        key = (name, label, self._app if app is None else app)
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry.fresh_until > now and entry.error is None:
            return entry.prompt  # type: ignore[return-value]
        if entry is not None and entry.error is not None:
            if entry.fresh_until > now:
                raise entry.error
            return await self._single_flight(key, entry)
        if entry is not None and entry.stale_until > now:
            if self._claim_refresh(key):
                task = asyncio.get_running_loop().create_task(self._background(key, entry))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            return entry.prompt  # type: ignore[return-value]
        return await self._single_flight(key, entry)

    async def _single_flight(self, key: Key, entry: _Entry | None) -> Prompt:
        """One request per prompt for the callers that must wait: the others await its answer. Shielded,
        so a caller that is cancelled does not cancel the request the others wait for."""
        flight = self._waits.get(key)
        if flight is None or flight.get_loop() is not asyncio.get_running_loop():
            flight = asyncio.get_running_loop().create_task(self._revalidate(key, entry))
            self._waits[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: Key, flight: asyncio.Task[Prompt]) -> None:
        if self._waits.get(key) is flight:
            del self._waits[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: every waiter that is left gets it; none left is no warning

    async def _background(self, key: Key, entry: _Entry) -> None:
        try:
            await self._revalidate(key, entry)
        except AtalayaError:
            pass
        except Exception:
            logger.exception("atalaya: background revalidation of %r failed", key[0])
        finally:
            self._release_refresh(key)

    async def _revalidate(self, key: Key, entry: _Entry | None) -> Prompt:
        known, path, query, headers = self._request(key, entry)
        try:
            response = await self._http.get(path, params=query, headers=headers)
        except httpx.TransportError as exc:
            return self._keep_serving(key, entry, exc)
        return self._settle(key, entry, known, response)
