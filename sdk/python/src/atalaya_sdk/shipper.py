"""Log shipping that never blocks or breaks the caller.

`put` appends a small dict to a bounded deque (when full, the event is dropped and counted) and, once a
batch is waiting, wakes the background thread. The thread sends batches of up to `batch_size` events
(or whatever is waiting every `flush_interval` seconds) to `POST /api/v1/logs/batch`, retrying
connection errors, 5xx and 429 with exponential backoff and full jitter, honouring `Retry-After`.
Every event carries its `request_id` from the moment it is logged, so a retried batch, even one the
console stored before the connection dropped, is stored once: the console counts the repeat as
`duplicate`.

Each event is encoded on its own, in the thread (strict JSON: no NaN or infinity), so one that
cannot be encoded (a NaN, a non-string key, a circular reference) is dropped and counted `invalid`
alone; a batch the console refuses whole (400, 413) is split in halves until the culprit is alone.

When a batch cannot be delivered, it goes to the spill folder (one JSON file per batch, written
atomically, at most `max_spill_bytes` in all; past that, events are dropped and counted) and the
shipper waits before it tries the console again (a circuit breaker, so the queue is spilled at once
while the console stays down). Spilled batches, also those a previous process left, are delivered
after the live queue when the console answers again, and their file is deleted only after a 202.
A spilled batch the console answers with 5xx has its failures counted in its name (`….f3.json`),
goes behind the others, and after `max_spill_attempts` such failures is set aside as `….bad`
(counted `set_aside`; rename it back to `.json` to try it again). `flush()` delivers (or spills)
everything logged so far; `close()`, also registered to run at exit, flushes and stops.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

logger = logging.getLogger("atalaya_sdk")

BATCH_PATH = "/api/v1/logs/batch"
_TIMES = ("started_at", "ended_at")
_FAILURES = re.compile(r"\.f(\d+)$")  # in a spill file's stem: the 5xx answers it got


def _failures(path: Path) -> int:
    match = _FAILURES.search(path.stem)
    return int(match.group(1)) if match else 0


def _body(parts: list[bytes]) -> bytes:
    return b'{"events":[' + b",".join(parts) + b"]}"


def _iso(value: Any) -> Any:
    if isinstance(value, float | int):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return value


def _wire(event: dict[str, Any]) -> dict[str, Any]:
    """The event as the console takes it: timestamps (epoch seconds or datetimes) as ISO 8601."""
    for name in _TIMES:
        if name in event:
            event[name] = _iso(event[name])
    return event


class ShipperStats:
    """Counters, in events (read them; the shipper writes them)."""

    def __init__(self) -> None:
        self.accepted = 0  # stored by the console (202, counted `accepted`)
        self.duplicate = 0  # the console already had them (a retry whose first answer was lost)
        self.rejected = 0  # refused by the console (invalid event, or a 4xx for the whole batch)
        self.invalid = 0  # dropped before sending: not encodable as JSON (NaN, a non-string key, a cycle)
        self.set_aside = 0  # in spill files set aside as .bad after max_spill_attempts 5xx answers
        self.dropped = 0  # never sent: the queue or the spill folder was full, or there is no spill folder
        self.spilled = 0  # written to the spill folder
        self.unspilled = 0  # delivered from the spill folder
        self.retries = 0  # requests sent again
        self.requests = 0  # batch requests sent

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class LogShipper:
    def __init__(
        self,
        http: httpx.Client,
        *,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        spill_dir: str | os.PathLike[str] | None = None,
        max_spill_bytes: int = 64 * 1024 * 1024,
        max_spill_attempts: int = 10,
    ):
        self._http = http
        self._batch_size = max(1, min(batch_size, 500))
        self._interval = flush_interval
        self._max_queue = max_queue
        self._max_attempts = max(1, max_attempts)
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._spill_dir = Path(spill_dir) if spill_dir else None
        self._max_spill_bytes = max_spill_bytes
        self._max_spill_attempts = max(1, max_spill_attempts)
        self._refused_5xx = False  # the last failed _send ended on a 5xx answer (not a connection error)
        self._spill_bytes = 0
        self._spill_seq = 0
        if self._spill_dir is not None:
            self._spill_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # raw texts: private (files 0600)
            self._spill_bytes = sum(p.stat().st_size for p in self._spill_dir.glob("*.json"))
        self.stats = ShipperStats()
        self._queue: deque[dict[str, Any]] = deque()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._cond = threading.Condition()
        self._inflight = 0
        self._flush_asked = 0  # flush requests made, and the one the last full cycle answered
        self._flush_done = 0
        self._down_until = 0.0  # while the console is down: the monotonic time of the next try
        self._down_pause = 0.0
        self._thread = threading.Thread(target=self._run, name="atalaya-log-shipper", daemon=True)
        self._thread.start()

    # The caller's side: a length check and an append.

    def put(self, event: dict[str, Any]) -> bool:
        queue = self._queue
        if len(queue) >= self._max_queue:
            self.stats.dropped += 1
            return False
        queue.append(event)
        if len(queue) == self._batch_size:
            self._wake.set()
        return True

    @property
    def pending(self) -> int:
        """Events in memory, not yet delivered or spilled."""
        return len(self._queue) + self._inflight

    def spilled_files(self) -> list[Path]:
        """The spill files in the order they are tried: fewest failures first, then oldest first."""
        if self._spill_dir is None:
            return []
        return sorted(self._spill_dir.glob("*.json"), key=lambda p: (_failures(p), p.name))

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Deliver everything logged so far (or spill it, if the console is down) and try the spilled
        batches again. True when nothing is left in memory or in the spill folder."""
        if not self._thread.is_alive():
            return self.pending == 0 and not self.spilled_files()
        with self._cond:
            self._flush_asked += 1
            asked = self._flush_asked
            self._wake.set()
            self._cond.wait_for(lambda: self._flush_done >= asked, timeout)
        return self.pending == 0 and not self.spilled_files()

    def close(self, timeout: float = 10.0) -> None:
        """Flush (one attempt per batch: what fails is spilled) and stop the thread."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)

    # The background thread.

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            closing = self._closing.is_set()
            with self._cond:
                asked = self._flush_asked
            try:
                self._cycle(probe=asked > self._flush_done or closing, closing=closing)
            except Exception:  # the thread must live on, whatever happens
                logger.exception("atalaya: log shipping cycle failed")
            with self._cond:
                self._flush_done = asked
                self._cond.notify_all()
            if closing:
                return
            if len(self._queue) >= self._batch_size:
                self._wake.set()  # more than a batch came in meanwhile: no pause

    def _take(self) -> list[dict[str, Any]]:
        queue = self._queue
        with self._cond:
            batch = [queue.popleft() for _ in range(min(self._batch_size, len(queue)))]
            self._inflight = len(batch)
        return batch

    def _done(self) -> None:
        with self._cond:
            self._inflight = 0

    def _cycle(self, *, probe: bool, closing: bool) -> None:
        attempts = 1 if closing else self._max_attempts
        budget = len(self._queue)  # what was logged before this cycle: then flush() waiters are answered
        while budget > 0 and self._queue:
            batch = self._take()
            budget -= len(batch)
            try:
                parts = self._encode(batch)
                if not parts:
                    continue
                down = time.monotonic() < self._down_until
                if down and not probe:
                    self._spill(parts)
                    continue
                left = self._send(parts, 1 if down else attempts)
                probe = False
                if left:
                    self._spill(left)
            finally:
                self._done()
        # The live queue first: an old spill file the console keeps refusing must not hold it back.
        if self._spill_dir is not None and (probe or time.monotonic() >= self._down_until):
            self._unspill(attempts)

    def _encode(self, events: Iterable[dict[str, Any]]) -> list[bytes]:
        """Each event as strict JSON; one that cannot be encoded is dropped and counted `invalid`."""
        parts = []
        for event in events:
            try:
                text = json.dumps(_wire(event), separators=(",", ":"), default=str, allow_nan=False)
            except Exception as exc:  # NaN or infinity, a non-string key, a circular reference, a bad __str__
                self.stats.invalid += 1
                logger.error(
                    "atalaya: log event %s dropped: it cannot be sent as JSON (%s: %s)",
                    event.get("request_id") if isinstance(event, dict) else None,
                    type(exc).__name__,
                    exc,
                )
                continue
            parts.append(text.encode())
        return parts

    def _unspill(self, attempts: int) -> None:
        for path in self.spilled_files():
            try:
                size = path.stat().st_size
                events = json.loads(path.read_bytes())["events"]
                if not isinstance(events, list):
                    raise TypeError("events is not a list")
            except FileNotFoundError:
                continue  # another process sharing the folder delivered it
            except (OSError, ValueError, KeyError, TypeError):
                logger.error("atalaya: unreadable spill file %s, set aside", path)
                self._set_aside(path, 0)
                continue
            parts = self._encode(events)
            left = self._send(parts, attempts) if parts else []
            if left:
                if len(left) != len(parts):
                    self._write_spill(left, path)
                if self._refused_5xx:  # the console answered, and refused this batch
                    self._failed(path, len(left))
                return  # the console is down again: the rest waits
            path.unlink(missing_ok=True)
            self._spill_bytes -= size
            self.stats.unspilled += len(parts)

    def _failed(self, path: Path, events: int) -> None:
        """A spill file got a 5xx: count it in its name (it goes behind the others); set it aside at the limit."""
        failures = _failures(path) + 1
        if failures >= self._max_spill_attempts:
            logger.error(
                "atalaya: spill file %s refused %d times by the console, set aside (%d log events)",
                path,
                failures,
                events,
            )
            if self._set_aside(path, failures):
                self.stats.set_aside += events
            return
        stem = _FAILURES.sub("", path.stem)
        with contextlib.suppress(FileNotFoundError):  # another process sharing the folder delivered it
            os.replace(path, path.with_name(f"{stem}.f{failures}.json"))

    def _set_aside(self, path: Path, failures: int) -> bool:
        stem = _FAILURES.sub("", path.stem)
        try:
            size = path.stat().st_size
            os.replace(path, path.with_name(f"{stem}.f{failures}.bad" if failures else f"{stem}.bad"))
        except FileNotFoundError:
            return False
        self._spill_bytes -= size
        return True

    def _send(self, parts: list[bytes], attempts: int) -> list[bytes]:
        """Deliver the batch (encoded events); those not delivered (all, or the part past a split)."""
        body = _body(parts)
        self._refused_5xx = False
        for attempt in range(attempts):
            wait = self._backoff(attempt)
            try:
                self.stats.requests += 1
                response = self._http.post(
                    BATCH_PATH, content=body, headers={"Content-Type": "application/json"}
                )
            except httpx.TransportError as exc:
                reason: str = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 202:
                    answer = response.json()
                    self.stats.accepted += answer.get("accepted", 0)
                    self.stats.duplicate += answer.get("duplicate", 0)
                    self.stats.rejected += answer.get("rejected", 0)
                    for error in answer.get("errors", [])[:5]:
                        logger.warning("atalaya: the console rejected a log event: %s", error)
                    self._up()
                    return []
                if status in (400, 413) and len(parts) > 1:
                    # Refused whole (malformed, too large): halves, until the culprit is alone.
                    half = len(parts) // 2
                    return self._send(parts[:half], attempts) + self._send(parts[half:], attempts)
                if status != 429 and status < 500:
                    self.stats.rejected += len(parts)
                    logger.error(
                        "atalaya: the console refused %d log events: %s", len(parts), response.text[:500]
                    )
                    return []  # a refusal (400, 401, 403, 413) will not change by trying again
                reason = f"HTTP {status}"
                retry_after = _retry_after(response)
                if retry_after is not None:
                    if retry_after > self._backoff_max:
                        self._down(retry_after, reason)
                        return parts
                    wait = retry_after
            if attempt + 1 < attempts:
                self.stats.retries += 1
                if self._closing.wait(wait) and attempts > 1:
                    attempts = attempt + 2  # closing: one last try, then spill
        self._refused_5xx = reason.startswith("HTTP 5")
        self._down(None, reason)
        return parts

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self._backoff_max, self._backoff_base * 2**attempt)
        return random.uniform(0, ceiling)  # noqa: S311 # nosec B311 # full jitter, not a secret

    def _up(self) -> None:
        self._down_until = 0.0
        self._down_pause = 0.0

    def _down(self, pause: float | None, reason: str) -> None:
        if pause is None:
            self._down_pause = min(self._backoff_max, max(1.0, self._down_pause * 2))
            pause = self._down_pause * random.uniform(0.5, 1.0)  # noqa: S311 # nosec B311 # jitter, not a secret
        self._down_until = time.monotonic() + pause
        logger.warning("atalaya: the console is not taking logs (%s); next try in %.1f s", reason, pause)

    def _spill(self, parts: list[bytes]) -> None:
        if self._spill_dir is None:
            self.stats.dropped += len(parts)
            logger.error(
                "atalaya: %d log events dropped: the console is down and there is no spill folder",
                len(parts),
            )
            return
        self._write_spill(parts, None)

    def _write_spill(self, events: list[bytes], replaces: Path | None) -> None:
        if self._spill_dir is None:
            return
        data = _body(events)
        old = replaces.stat().st_size if replaces is not None and replaces.exists() else 0
        if replaces is None and self._spill_bytes + len(data) > self._max_spill_bytes:
            self.stats.dropped += len(events)
            logger.error(
                "atalaya: spill folder full (%d bytes): %d log events dropped", self._spill_bytes, len(events)
            )
            return
        self._spill_seq += 1
        path = replaces or self._spill_dir / f"{time.time_ns():020d}-{os.getpid()}-{self._spill_seq}.json"
        fd, tmp = tempfile.mkstemp(dir=self._spill_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        self._spill_bytes += len(data) - old
        if replaces is None:
            self.stats.spilled += len(events)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            from email.utils import parsedate_to_datetime

            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None
