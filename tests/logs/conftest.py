import re
from datetime import UTC, datetime, timedelta

import pytest

from apps.cloud.pii import Finding, ScannerUnavailable, ScanResult
from apps.cloud.pii.base import redact

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class EmailOnlyScanner:
    """A stand-in of our own scanner interface for pipeline tests: finds e-mail addresses only, and can
    be told to fail like an unreachable scanner."""

    name = "test"

    def __init__(self):
        self.failures_left = 0
        self.calls = 0

    def scan(self, texts, policy):
        self.calls += 1
        if self.failures_left:
            self.failures_left -= 1
            raise ScannerUnavailable("scanner unreachable (test)")
        results = []
        for text in texts:
            findings = tuple(
                Finding("EMAIL_ADDRESS", m.start(), m.end(), "VERY_LIKELY") for m in EMAIL.finditer(text)
            )
            results.append(ScanResult(redact(text, findings, policy), findings))
        return results


@pytest.fixture
def scanner(monkeypatch):
    fake = EmailOnlyScanner()
    monkeypatch.setattr("apps.logs.services.get_scanner", lambda: fake)
    return fake


def event(request_id="r1", **overrides):
    base = {
        "request_id": request_id,
        "started_at": "2026-11-21T10:00:00Z",
        "ended_at": "2026-11-21T10:00:01.2Z",
        "app": "support-bot",
        "prompt": "support-reply",
        "prompt_version": 1,
        "model": "gemini-2.5-flash",
        "input": [
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "I am ana.garcia@example.com, my order is late"},
        ],
        "output": "Sorry Ana, we will write to ana.garcia@example.com today.",
        "tokens_in": 812,
        "tokens_out": 95,
        "latency_ms": 1180,
        "status": "ok",
        "end_user": "u-123",
        "metadata": {"channel": "web", "contact": "ana.garcia@example.com"},
    }
    base.update(overrides)
    return base


def days_ago(n):
    return (datetime.now(UTC) - timedelta(days=n)).isoformat().replace("+00:00", "Z")
