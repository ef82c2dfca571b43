"""Encryption of staged (not yet scanned) log text, with Fernet (AES-128-CBC + HMAC-SHA256).

Keys come from ATALAYA_STAGING_KEYS (comma-separated Fernet keys, newest first, so keys rotate
without losing staged events; in production, mount them from Secret Manager). On the embedded
default, with no key set, one is derived from DJANGO_SECRET_KEY.
"""

import base64
import hashlib
from functools import cache
from typing import Any

import msgspec
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings


@cache
def _fernet() -> MultiFernet:
    keys = list(settings.LOG_STAGING_KEYS)
    if not keys:
        derived = hashlib.sha256(f"atalaya-staging:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(k) for k in keys])


def seal(payload: dict[str, Any]) -> bytes:
    return _fernet().encrypt(msgspec.json.encode(payload))  # compact UTF-8 JSON, several times json's speed


def unseal(token: bytes | memoryview | None) -> dict[str, Any]:
    if token is None:
        raise ValueError("nothing staged")
    return msgspec.json.decode(_fernet().decrypt(bytes(token)))


@cache
def pii_token_key() -> bytes:
    """The key of keyed deterministic PII tokens (ATALAYA_PII_TOKEN_KEY; derived locally)."""
    if settings.PII_TOKEN_KEY:
        return settings.PII_TOKEN_KEY.encode()
    return hashlib.sha256(f"atalaya-pii-token:{settings.SECRET_KEY}".encode()).digest()
