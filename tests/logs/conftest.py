from datetime import UTC, datetime, timedelta

import pytest

from tests.logs.scanners import EmailOnlyScanner


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
