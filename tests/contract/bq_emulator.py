"""bqemulator for the BigQuery contract tests: one emulator per fixture, in its own process.

Why a subprocess: bqemulator reconfigures the root logger (`logging.basicConfig(force=True)`) and
structlog when it starts, and keeps a DuckDB connection, a gRPC server and an event loop on threads;
none of that should leak into the test process. Startup takes about a second.

What the child process changes in bqemulator, and why (DESIGN.md, "Outside systems"):
- No network. DuckDB's spatial extension, which bqemulator loads at startup with `INSTALL spatial`,
  is installed from the `duckdb-extension-spatial` wheel into an extension directory inside the
  emulator's temporary folder, and every DuckDB connection in the child uses that directory with
  `autoinstall_known_extensions` off, so `INSTALL spatial` finds it installed and nothing is
  downloaded. The optional avro extension (which would be downloaded) is disabled.
- The upload route (load jobs) rejects the client's `*/*` media type: `*/*` is added to its permitted
  media types.
- A fault switch for the tests: `POST /_test/fault` with `{"status": 503, "path_contains": "/insertAll",
  "skip": 0, "times": 1, "body": null}` makes the next matching requests fail with that status (after
  `skip` matching requests pass; `times` null = until cleared; `body`, when given, is the answer instead
  of a Google error, e.g. insertErrors with a 200); `DELETE /_test/fault` clears it; `GET /_test/requests`
  counts the requests served per kind (`insertAll`, `queries`, `jobs`, `tables`, `datasets`).

Use in a test module: `from tests.contract.bq_emulator import bq_emulator, fresh_bq_emulator` and take
the fixtures (a running `BqEmulator`: `.url`, `.project`, `.fault(...)`, `.clear_fault()`, `.requests()`,
`.stop()`): `bq_emulator` is shared by the module, `fresh_bq_emulator` is one test's own. Each emulator has a free port of its own and its data in a temporary folder, so the tests
are safe under pytest-xdist.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT = "atalaya-test"
_STARTUP_TIMEOUT_SECONDS = 60.0


class BqEmulator:
    """A bqemulator child process, listening on 127.0.0.1 on a port the OS chose."""

    def __init__(self, workdir: Path, project: str = PROJECT) -> None:
        self.workdir = workdir
        self.project = project
        self.port: int | None = None
        self._proc: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the emulator is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BqEmulator:
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = (self.workdir / "emulator.log").open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env = {k: v for k, v in env.items() if not k.startswith("BQEMU_")}
        self._proc = subprocess.Popen(  # the same interpreter, this very file
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--workdir",
                str(self.workdir),
                "--project",
                self.project,
            ],
            stdin=subprocess.PIPE,  # the child exits when this pipe closes (the test process died)
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        log.close()
        assert self._proc.stdout is not None
        deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self._proc.stdout], [], [], 0.2)
            if ready:
                line = self._proc.stdout.readline()
                if line.startswith("BQEMU_READY "):
                    self.port = int(line.split()[1])
                    return self
            if self._proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"bqemulator did not start:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        path = self.workdir / "emulator.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # The fault switch and the request counter (served by the child, see _FaultSwitch).

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def fault(
        self,
        status: int = 503,
        path_contains: str = "",
        *,
        skip: int = 0,
        times: int | None = None,
        body: Any = None,
    ) -> None:
        """Answer requests whose path contains `path_contains` with `status` (and `body`, else a Google
        error) instead of serving them, after `skip` of them pass; `times` None: until cleared."""
        spec = {"status": status, "path_contains": path_contains, "skip": skip, "times": times, "body": body}
        self._control("POST", "/_test/fault", spec)

    def clear_fault(self) -> None:
        self._control("DELETE", "/_test/fault")

    def requests(self) -> Counter[str]:
        return Counter(self._control("GET", "/_test/requests"))


@contextlib.contextmanager
def running_emulator() -> Iterator[BqEmulator]:
    with tempfile.TemporaryDirectory(prefix="bqemu-") as workdir:
        emulator = BqEmulator(Path(workdir)).start()
        try:
            yield emulator
        finally:
            emulator.stop()


@pytest.fixture(scope="module")
def bq_emulator() -> Iterator[BqEmulator]:
    """An emulator shared by a test module (its own port and temporary folder, so one per xdist worker):
    give each test a dataset of its own, and clear any fault it sets."""
    with running_emulator() as emulator:
        yield emulator


@pytest.fixture
def fresh_bq_emulator() -> Iterator[BqEmulator]:
    """An emulator for one test alone, e.g. one that stops it."""
    with running_emulator() as emulator:
        yield emulator


# ---------------------------------------------------------------------------------------------------
# The child process
# ---------------------------------------------------------------------------------------------------


def _request_kind(path: str) -> str:
    for kind in ("insertAll", "queries", "jobs", "tables", "datasets"):
        if f"/{kind}" in path:
            return kind
    return "other"


class _FaultSwitch:
    """An ASGI wrapper around bqemulator's app: the fault switch and the request counter."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.spec: dict[str, Any] | None = None
        self.seen = 0
        self.counts: Counter[str] = Counter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/_test/"):
            await self._control(scope, receive, send)
            return
        if self.spec is not None and self.spec["path_contains"] in path:
            self.seen += 1
            times = self.spec["times"]
            if self.seen > self.spec["skip"] and (times is None or self.seen <= self.spec["skip"] + times):
                await self._fail(int(self.spec["status"]), self.spec.get("body"), receive, send)
                return
        self.counts[_request_kind(path)] += 1
        await self.app(scope, receive, send)

    async def _control(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        method, path = scope["method"], scope["path"]
        answer: Any = None
        if path == "/_test/fault" and method == "POST":
            self.spec = {"skip": 0, "times": None, "path_contains": "", **json.loads(body)}
            self.seen = 0
        elif path == "/_test/fault" and method == "DELETE":
            self.spec = None
        elif path == "/_test/requests":
            answer = dict(self.counts)
        await _respond(send, 200, answer)

    @staticmethod
    async def _fail(status: int, body: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):  # drain the request
            pass
        if body is not None:  # a canned answer, e.g. insertAll's insertErrors with a 200
            await _respond(send, status, body)
            return
        reason = {429: "rateLimitExceeded", 500: "internalError", 503: "backendError"}.get(status, "failed")
        error = {"code": status, "message": f"injected fault {status}", "status": "UNAVAILABLE"}
        error["errors"] = [{"reason": reason, "message": f"injected fault {status}"}]
        await _respond(send, status, {"error": error})


async def _respond(send: Any, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


def _offline_duckdb(extension_dir: Path) -> None:
    """Every DuckDB connection in this process uses `extension_dir`, where spatial is installed from
    its wheel, and never downloads an extension."""
    import duckdb
    import duckdb_extension_spatial

    wheel_file = (
        Path(duckdb_extension_spatial.__file__).parent
        / "extensions"
        / f"v{duckdb.__version__}"
        / "spatial.duckdb_extension"
    )
    if not wheel_file.exists():
        raise RuntimeError(f"{wheel_file} is missing: install duckdb-extension-spatial=={duckdb.__version__}")
    offline = {"extension_directory": str(extension_dir), "autoinstall_known_extensions": False}
    connect = duckdb.connect

    def offline_connect(database: Any = ":memory:", read_only: bool = False, config: Any = None, **kw: Any):
        return connect(database, read_only=read_only, config={**offline, **(config or {})}, **kw)

    duckdb.connect = offline_connect  # type: ignore[assignment]
    installer = duckdb.connect(":memory:")
    installer.execute(f"INSTALL '{wheel_file}'")
    installer.close()


def _permit_any_media_type() -> None:
    """google-cloud-bigquery uploads load-job data as `*/*`, which bqemulator's upload route rejects."""
    from bqemulator.api.routes import upload

    if "*/*" not in upload._PERMITTED_MEDIA_CONTENT_TYPES:
        upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")


async def _serve(workdir: Path, project: str) -> None:
    from bqemulator import server as bqemu_server
    from bqemulator.config import LogFormat, LogLevel, PersistenceMode, Settings

    _offline_duckdb(workdir / "duckdb-extensions")
    _permit_any_media_type()
    create_app = bqemu_server.create_app
    bqemu_server.create_app = lambda context: _FaultSwitch(create_app(context))  # type: ignore[assignment]

    settings = Settings(
        rest_host="127.0.0.1",
        rest_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        persistence_mode=PersistenceMode.EPHEMERAL,
        default_project_id=project,
        enable_format_extensions=False,
        upload_staging_dir=workdir / "uploads",
        log_level=LogLevel.WARNING,
        log_format=LogFormat.CONSOLE,
    )
    emulator = bqemu_server.EmulatorServer(settings)
    await emulator.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_reader(sys.stdin.fileno(), stop.set)  # EOF on stdin: the test process has gone
    print(f"BQEMU_READY {emulator.rest_port}", flush=True)
    try:
        await stop.wait()
    finally:
        await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description="bqemulator for the contract tests (offline)")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--project", default=PROJECT)
    args = parser.parse_args()
    asyncio.run(_serve(args.workdir, args.project))


if __name__ == "__main__":
    main()
