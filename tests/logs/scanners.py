"""Stand-ins of our own scanner interface (apps.cloud.pii.base.PiiScanner) for pipeline tests.
They are not fakes of an outside system: the DLP path has its own wire-level fake in tests/contract."""

import re
import time

from apps.cloud.pii import Finding, ScannerUnavailable, ScanResult
from apps.cloud.pii.base import redact

EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


class EmailOnlyScanner:
    """Finds e-mail addresses only, and can be told to fail like an unreachable scanner."""

    name = "test"

    def __init__(self):
        self.failures_left = 0
        self.calls = 0

    @classmethod
    def from_settings(cls):
        return cls()

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


class SlowScanner(EmailOnlyScanner):
    """Takes a while per batch, so that a test can kill a worker in the middle of scanning."""

    name = "slow-test"

    def scan(self, texts, policy):
        time.sleep(0.4)
        return super().scan(texts, policy)
