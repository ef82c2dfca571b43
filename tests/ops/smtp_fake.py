"""A small SMTP server for the e-mail settings tests: speaks enough of RFC 5321 (EHLO, AUTH PLAIN,
MAIL, RCPT, DATA, RSET, NOOP, QUIT) for Python's smtplib, which Django's SMTP backend uses, and records
what it was given. Plain TCP on loopback (no STARTTLS)."""

import base64
import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class Received:
    logins: list[tuple[str, str]] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


class _Handler(socketserver.StreamRequestHandler):
    received: Received

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 fake-smtp ESMTP")
        while raw := self.rfile.readline():
            line = raw.decode().rstrip("\r\n")
            verb, _, rest = line.partition(" ")
            verb = verb.upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250-fake-smtp")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH" and rest.upper().startswith("PLAIN "):
                _, user, password = base64.b64decode(rest.split(" ", 1)[1]).decode().split("\0")
                self.received.logins.append((user, password))
                self.reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL":
                self.received.senders.append(rest.split(":", 1)[1].strip().split()[0].strip("<>"))
                self.reply("250 OK")
            elif verb == "RCPT":
                self.received.recipients.append(rest.split(":", 1)[1].strip().strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                while (data := self.rfile.readline().decode()) not in (".\r\n", ""):
                    lines.append(data)
                self.received.messages.append("".join(lines))
                self.reply("250 OK: queued")
            elif verb in ("RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")


class FakeSmtpServer:
    def __init__(self):
        self.received = Received()
        handler = type("Handler", (_Handler,), {"received": self.received})
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeSmtpServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
