"""An in-repo fake of an OpenAI-compatible model server (what a vLLM serves), for the real `openai` client.

It speaks the wire format over HTTP/1.1 with keep-alive, one thread per connection (so it keeps up with
as many concurrent requests as the client opens):

- `POST /v1/chat/completions`: `{"model", "messages": [{"role", "content"}], …}` → `{"id", "object":
  "chat.completion", "created", "model", "choices": [{"index": 0, "message": {"role": "assistant",
  "content"}, "finish_reason"}], "usage": {"prompt_tokens", "completion_tokens", "total_tokens"}}`.
  The answer is `answers[last user message]` when scripted, `responder(body)` when set, otherwise
  "echo: <last user message>". Tokens are words (whitespace-separated); `max_tokens` cuts the answer
  to that many words (finish_reason "length").
- `POST /v1/embeddings`: `{"model", "input": text or list, "encoding_format": "float" | "base64"}` →
  `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}`, with
  deterministic vectors (`vector_for(text)`), for the models in `embedding_models`.

What it checks, as such a server does: `Authorization: Bearer <api_key>` (401 `invalid_api_key`
otherwise), the JSON body, a known model (404 `model_not_found`), messages with a role and a text.
Errors have OpenAI's shape `{"error": {"message", "type", "code"}}`.

Control: `latency_seconds` (each answer waits that long), `fail_next(n, status=500, retry_after=None)`
(the next n requests answer that status, with a Retry-After header when given), `drop_next(n)` (the next
n connections are closed without an answer), `requests` (every request: path, headers, parsed body),
`in_flight` and `max_in_flight` (requests being answered at once, and the most seen).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

EMBEDDING_DIMENSIONS = 8


def vector_for(text: str) -> list[float]:
    """The fake's embedding of a text: 8 floats from its SHA-256, the same every time."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round(b / 255.0, 6) for b in digest[:EMBEDDING_DIMENSIONS]]


def words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True)
class Recorded:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON (None when it was not JSON)


@dataclass
class Fault:
    status: int = 500
    retry_after: str | None = None
    drop: bool = False
    message: str = "The server had an error while processing your request."


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # many clients connect at once (the default backlog is 5)


class FakeOpenAI:
    def __init__(
        self,
        *,
        api_key: str = "test-key",
        models: tuple[str, ...] = ("fake-llm", "meta-llama/Llama-3.1-8B-Instruct"),
        embedding_models: tuple[str, ...] = ("fake-embed",),
        latency_seconds: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.models = set(models)
        self.embedding_models = set(embedding_models)
        self.latency_seconds = latency_seconds
        self.answers: dict[str, str] = {}
        self.responder: Callable[[dict[str, Any]], str] | None = None
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- control ----------------------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-fake", daemon=True
        )
        self._thread.start()
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fail_next(self, n: int = 1, *, status: int = 500, retry_after: float | str | None = None) -> None:
        message = {
            429: "Rate limit reached for requests. Please try again later.",
            400: "Invalid request.",
            503: "The server is overloaded or not ready yet.",
        }.get(status, "The server had an error while processing your request.")
        fault = Fault(
            status=status, retry_after=None if retry_after is None else str(retry_after), message=message
        )
        with self._lock:
            self._faults.extend([fault] * n)

    def drop_next(self, n: int = 1) -> None:
        with self._lock:
            self._faults.extend([Fault(drop=True)] * n)

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def bodies(self, path: str = "/v1/chat/completions") -> list[Any]:
        return [r.body for r in self.requests if r.path == path]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = 0

    # -- serving (called by the handler threads) --------------------------------------------------------

    def _enter(self, record: Recorded) -> Fault | None:
        with self._lock:
            self.requests.append(record)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self._faults.pop(0) if self._faults else None

    def _leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def answer_for(self, body: dict[str, Any]) -> str:
        if self.responder is not None:
            return self.responder(body)
        last_user = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        return self.answers.get(last_user, f"echo: {last_user}")


def _error(status: int, message: str, kind: str, code: str | None) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"message": message, "type": kind, "param": None, "code": code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as uvicorn (vLLM's server) does: no 40 ms delayed-ACK stalls
    server_fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        fake = self.server_fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        path = self.path.split("?")[0]
        fault = fake._enter(Recorded(path, {k.lower(): v for k, v in self.headers.items()}, body))
        try:
            if fake.latency_seconds:
                time.sleep(fake.latency_seconds)
            if fault is not None and fault.drop:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            headers: dict[str, str] = {}
            if fault is not None:
                status, payload = _error(fault.status, fault.message, "server_error", None)
                if fault.status == 429:
                    payload["error"].update(type="requests", code="rate_limit_exceeded")
                if fault.retry_after is not None:
                    headers["Retry-After"] = fault.retry_after
            else:
                status, payload = self._serve(path, body)
            self._send(status, payload, headers)
        finally:
            fake._leave()

    def _serve(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        fake = self.server_fake
        if self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return _error(
                401,
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        if not isinstance(body, dict):
            return _error(
                400, "We could not parse the JSON body of your request.", "invalid_request_error", None
            )
        if path == "/v1/chat/completions":
            return self._chat(body)
        if path == "/v1/embeddings":
            return self._embeddings(body)
        return _error(404, f"Invalid URL (POST {path})", "invalid_request_error", None)

    def _chat(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fake = self.server_fake
        model = body.get("model")
        if model not in fake.models:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model_not_found")
        messages = body.get("messages")
        if (
            not isinstance(messages, list)
            or not messages
            or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) and m.get("role") for m in messages
            )
        ):
            return _error(
                400, "'messages' must be a non-empty list of {role, content}.", "BadRequestError", None
            )
        temperature = body.get("temperature")
        if temperature is not None and not (0 <= temperature <= 2):
            return _error(
                400, f"temperature must be between 0 and 2, got {temperature}.", "BadRequestError", None
            )
        text = fake.answer_for(body)
        finish = "stop"
        max_tokens = body.get("max_tokens")
        if isinstance(max_tokens, int) and words(text) > max_tokens:
            text, finish = " ".join(text.split()[:max_tokens]), "length"
        prompt_tokens = sum(words(m["content"]) for m in messages)
        completion_tokens = words(text)
        return 200, {
            "id": f"chatcmpl-{hashlib.sha256(json.dumps(body).encode()).hexdigest()[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _embeddings(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        fake = self.server_fake
        model = body.get("model")
        if model not in fake.embedding_models:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError", "model_not_found")
        texts = body.get("input")
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            return _error(400, "'input' must be a text or a list of texts.", "BadRequestError", None)
        encoding = body.get("encoding_format") or "float"
        data = []
        for index, text in enumerate(texts):
            vector = vector_for(text)
            embedding: Any = (
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
                if encoding == "base64"
                else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(words(t) for t in texts)
        return 200, {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            "Content-Type: application/json",
            f"Content-Length: {len(data)}",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode() + data)  # one write: head and body
