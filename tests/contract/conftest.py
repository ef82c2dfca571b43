"""Fixtures for the contract tests: the real Google clients against in-repo fakes over TLS.

gRPC reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH once per process, when the first secure channel loads
the default roots, so the test certificate is installed as soon as pytest loads this file (before
any test of the process runs, under pytest-xdist too: each worker is a process that loads it).
"""

import pytest
from google.auth.credentials import AnonymousCredentials

from apps.cloud.pii.dlp import DlpScanner
from tests.contract.dlp_fake import FakeDlp
from tests.contract.tls import install_grpc_roots


def pytest_configure(config):
    install_grpc_roots()


@pytest.fixture
def dlp_fake():
    """A fresh fake DLP server on its own port (safe with pytest-xdist)."""
    fake = FakeDlp(install_grpc_roots()).start()
    yield fake
    fake.stop()


@pytest.fixture
def dlp_settings(settings, dlp_fake):
    """Settings that point the production construction at the fake: its endpoint, no retries,
    a short timeout, anonymous credentials."""
    settings.PII_SCANNER = "dlp"
    settings.GOOGLE_CLOUD_PROJECT = "atalaya-test"
    settings.DLP_LOCATION = "global"
    settings.DLP_API_ENDPOINT = dlp_fake.endpoint
    settings.DLP_TIMEOUT_SECONDS = 5.0
    settings.DLP_RETRY = False
    settings.DLP_ANONYMOUS_CREDENTIALS = True
    return settings


@pytest.fixture
def dlp_scanner(dlp_settings) -> DlpScanner:
    """The scanner as production builds it (`from_settings`), aimed at the fake."""
    scanner = DlpScanner.from_settings(credentials=AnonymousCredentials())
    yield scanner
    scanner.client.transport.close()
