"""Fixtures for the contract tests: the real Google clients against in-repo fakes over TLS.

gRPC reads GRPC_DEFAULT_SSL_ROOTS_FILE_PATH once per process, when the first secure channel loads
the default roots, so the test certificate is installed as soon as pytest loads this file (before
any test of the process runs, under pytest-xdist too: each worker is a process that loads it).
"""

import pytest
from google.auth.credentials import AnonymousCredentials

from apps.cloud.jobs import get_job_backend, get_serving_backend
from apps.cloud.pii.dlp import DlpScanner
from tests.contract.dlp_fake import FakeDlp
from tests.contract.tls import install_grpc_roots
from tests.contract.vertex_fake import FakeVertex


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


@pytest.fixture
def vertex_fake():
    """A fresh fake Vertex AI (jobs, tuning, models, endpoints, operations) on its own port."""
    fake = FakeVertex(install_grpc_roots()).start()
    yield fake
    fake.stop()


@pytest.fixture
def vertex_settings(settings, vertex_fake):
    """JOB_BACKEND=vertex aimed at the fake: its endpoint, no retries, short timeouts, anonymous
    credentials; everything else as production builds it (`from_settings`)."""
    settings.JOB_BACKEND = "vertex"
    settings.VERTEX_PROJECT = "atalaya-test"
    settings.VERTEX_LOCATION = "us-central1"
    settings.VERTEX_STAGING_BUCKET = "gs://atalaya-test-staging"
    settings.VERTEX_TRAINER_IMAGE = "us-docker.pkg.dev/atalaya-test/atalaya/trainer:1.0"
    settings.VERTEX_SERVING_IMAGE = "us-docker.pkg.dev/atalaya-test/atalaya/serving:1.0"
    settings.VERTEX_SERVICE_ACCOUNT = "atalaya-jobs@atalaya-test.iam.gserviceaccount.com"
    settings.VERTEX_API_ENDPOINT = vertex_fake.endpoint
    settings.VERTEX_TIMEOUT_SECONDS = 5.0
    settings.VERTEX_OPERATION_TIMEOUT_SECONDS = 10.0
    settings.VERTEX_RETRY = False
    settings.VERTEX_ANONYMOUS_CREDENTIALS = True
    get_job_backend.cache_clear()
    get_serving_backend.cache_clear()
    yield settings
    for cached in (get_job_backend, get_serving_backend):
        if cached.cache_info().currsize:
            cached().clients.close()
        cached.cache_clear()
