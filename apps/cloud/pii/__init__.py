"""PII scanning and redaction: `get_scanner()` returns the configured implementation.

PII_SCANNER=local  (default) apps.cloud.pii.local.LocalScanner: compiled patterns with validators
PII_SCANNER=dlp    apps.cloud.pii.dlp.DlpScanner: Cloud DLP inspect_content + deidentify_content
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from apps.cloud.pii.base import (
    INFO_TYPES,
    Finding,
    PiiScanner,
    RedactionMode,
    RedactionPolicy,
    ScannerUnavailable,
    ScanResult,
)

SCANNERS = {
    "local": "apps.cloud.pii.local.LocalScanner",
    "dlp": "apps.cloud.pii.dlp.DlpScanner",
}


@cache
def get_scanner() -> PiiScanner:
    name = settings.PII_SCANNER
    path = SCANNERS.get(name) or (name if "." in name else None)
    if path is None:
        raise ValueError(f"PII_SCANNER={name!r}: use one of {', '.join(SCANNERS)} or a dotted path")
    return import_string(path).from_settings()


__all__ = [
    "INFO_TYPES",
    "Finding",
    "PiiScanner",
    "RedactionMode",
    "RedactionPolicy",
    "ScanResult",
    "ScannerUnavailable",
    "get_scanner",
]
