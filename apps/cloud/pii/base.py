"""The PII scanner interface shared by the local scanner and Cloud DLP.

A scanner takes a batch of texts and returns, for each, the redacted text and its findings. Raw text
never leaves the scanner except as the redacted result. A scanner that cannot answer (timeout, the
service unavailable, a quota) raises ScannerUnavailable: the caller quarantines and retries.
"""

import enum
import hashlib
import hmac
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

# Cloud DLP infoType names, as the product's users know them.
INFO_TYPES = (
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD_NUMBER",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_SOCIAL_SECURITY_NUMBER",
    "SPAIN_DNI_NUMBER",
    "SPAIN_NIE_NUMBER",
    "SPAIN_NIF_NUMBER",
    "AUTH_TOKEN",  # secrets: API keys and tokens of common providers (DLP: AUTH_TOKEN, GCP_API_KEY, …)
)

# DLP's Likelihood enum names, weakest to strongest.
LIKELIHOODS = ("VERY_UNLIKELY", "UNLIKELY", "POSSIBLE", "LIKELY", "VERY_LIKELY")


class ScannerUnavailable(Exception):
    """The scanner could not answer now; the events stay quarantined and are retried."""


class RedactionMode(enum.StrEnum):
    REPLACE = "replace"  # "[EMAIL_ADDRESS]"
    MASK = "mask"  # "****************"
    TOKEN = "token"  # nosec B105 # a mode's name. "[EMAIL_ADDRESS:5f1c9a2e0b7d]": keyed and deterministic, so analysts can group by it


@dataclass(frozen=True)
class RedactionPolicy:
    mode: RedactionMode = RedactionMode.REPLACE
    token_key: bytes = b""  # for TOKEN: a secret from settings; the same value gives the same token
    mask_char: str = "*"

    def replacement(self, info_type: str, value: str) -> str:
        if self.mode is RedactionMode.MASK:
            return self.mask_char * len(value)
        if self.mode is RedactionMode.TOKEN:
            digest = hmac.new(self.token_key, f"{info_type}:{value}".encode(), hashlib.sha256).hexdigest()
            return f"[{info_type}:{digest[:12]}]"
        return f"[{info_type}]"


@dataclass(frozen=True)
class Finding:
    info_type: str
    start: int  # character offsets in the scanned text
    end: int
    likelihood: str = "LIKELY"


@dataclass(frozen=True)
class ScanResult:
    redacted: str
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    def counts(self) -> dict[str, int]:
        return dict(Counter(f.info_type for f in self.findings))


def redact(text: str, findings: Sequence[Finding], policy: RedactionPolicy) -> str:
    """Apply the policy to non-overlapping findings (the longest wins where two overlap)."""
    chosen: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if chosen and finding.start < chosen[-1].end:
            continue
        chosen.append(finding)
    out, cursor = [], 0
    for finding in chosen:
        out.append(text[cursor : finding.start])
        out.append(policy.replacement(finding.info_type, text[finding.start : finding.end]))
        cursor = finding.end
    out.append(text[cursor:])
    return "".join(out)


class PiiScanner(Protocol):
    name: str

    @classmethod
    def from_settings(cls) -> "PiiScanner": ...

    def scan(self, texts: Sequence[str], policy: RedactionPolicy) -> list[ScanResult]:
        """One result per text, in order. Raises ScannerUnavailable when it cannot answer."""
        ...
