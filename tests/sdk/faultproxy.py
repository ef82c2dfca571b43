"""An HTTP proxy in front of the live console that injects faults into log batch requests.

Each `POST /api/v1/logs/batch` takes the next fault from the script (then passes, once it is used up):
- "drop_before": the connection is closed before the request reaches the console;
- "drop_after": the request is forwarded (the console stores the batch) and the connection is closed
  before the answer reaches the client, so the client cannot know it was stored;
- "500": an error answer without forwarding;
- "429": `429 rate_limited` with `Retry-After: 1`, without forwarding;
- "pass": forwarded.
A batch whose body contains `poison` (a request id, say) is always answered 500, whatever the script.
Every other request is forwarded untouched. The proxy records what it did, with timestamps.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream_port: int, faults: list[str], poison: str | None = None):
        self.upstream_port = upstream_port
        self.faults = list(faults)
        self.poison = poison.encode() if poison else None
        self.events: list[tuple[float, str, int]] = []  # (time, action, upstream status or 0)
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                action = "pass"
                if self.command == "POST" and self.path.startswith("/api/v1/logs/batch"):
                    with proxy.lock:
                        action = proxy.faults.pop(0) if proxy.faults else "pass"
                    if proxy.poison is not None and proxy.poison in body:
                        action = "500"
                if action == "drop_before":
                    proxy.record(action, 0)
                    self._drop()
                    return
                if action in {"500", "429"}:
                    proxy.record(action, 0)
                    code = int(action)
                    error = {"code": "server_error" if code == 500 else "rate_limited", "message": "injected"}
                    payload = json.dumps({"error": error | {"details": {}}}).encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    if code == 429:
                        self.send_header("Retry-After", "1")
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                status, headers, answer = proxy.forward(self.command, self.path, self.headers, body)
                proxy.record(action, status)
                if action == "drop_after":
                    self._drop()
                    return
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP and name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def _drop(self):
                self.close_connection = True
                self.wfile.flush()
                self.connection.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def record(self, action: str, status: int) -> None:
        with self.lock:
            self.events.append((time.monotonic(), action, status))

    def forward(self, method, path, headers, body) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=60)
        try:
            sent = {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP}
            conn.request(method, path, body=body or None, headers=sent)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
