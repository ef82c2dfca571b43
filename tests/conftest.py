import os

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.factories import World, make_world

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


@pytest.fixture(scope="session", autouse=True)
def _end_stray_sessions(django_db_setup, django_db_blocker):
    """On PostgreSQL, a connection left open by another thread of this process (the live server, a
    concurrency test) would stop pytest-django from dropping the test database at the end: end those
    sessions first. SQLite has no such sessions."""
    yield
    from django.db import connection

    if connection.vendor != "postgresql":
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_broker(request, monkeypatch):
    """Unit tests do not need a broker: tasks enqueued on commit are recorded instead of sent.
    Integration tests (marked `integration`) use the real embedded broker."""
    if request.node.get_closest_marker("integration") or request.node.get_closest_marker("e2e"):
        yield []
        return
    sent: list[tuple[str, tuple]] = []
    from celery.app.task import Task

    def fake_delay(self, *args, **kwargs):
        sent.append((self.name, args))

    monkeypatch.setattr(Task, "delay", fake_delay)
    yield sent


@pytest.fixture
def enqueued(_no_broker):
    return _no_broker


@pytest.fixture
def world(db) -> World:
    return make_world()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def api_as():
    """api_as(user) → an APIClient signed in with a session; api_as(token=...) → Bearer token."""

    def make(user=None, token: str | None = None) -> APIClient:
        client = APIClient()
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        elif user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture(autouse=True)
def _local_backend_folders(settings, tmp_path):
    """The local job runner and serving backend keep their state in folders: one pair per test, so that
    no test sees another's jobs or endpoints. The configured backends are built again for each test."""
    from apps.cloud.jobs import get_job_backend, get_serving_backend

    settings.LOCAL_JOBS_DIR = str(tmp_path / "local-jobs")
    settings.LOCAL_ENDPOINTS_DIR = str(tmp_path / "local-endpoints")
    settings.LOCAL_EXPORTED_DATASETS_DIR = str(tmp_path / "local-datasets")
    get_job_backend.cache_clear()
    get_serving_backend.cache_clear()
    yield
    get_job_backend.cache_clear()
    get_serving_backend.cache_clear()
