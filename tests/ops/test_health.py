import pytest
from django.test import override_settings

from apps.common import health

BROKEN_CACHE = {"default": {"BACKEND": "tests.ops.broken_cache.BrokenCache"}}


def test_healthz_answers_without_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok_when_everything_answers(client, filesystem_broker):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {"database": "ok", "broker": "ok", "cache": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_ok_on_the_suites_own_broker(client):
    """The broker the suite runs on (filesystem on the embedded default, Redis in CI) is reachable."""
    assert client.get("/readyz").json()["broker"] == "ok"


@pytest.mark.django_db
def test_readyz_reports_a_stopped_broker(client, closed_port):
    with override_settings(
        CELERY_BROKER_URL=f"amqp://guest:guest@127.0.0.1:{closed_port}//",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
        READYZ_TIMEOUT_SECONDS=1,
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "broker": "failed", "cache": "ok", "failed": ["broker"]}


@pytest.mark.django_db
def test_readyz_reports_a_stopped_redis(client, closed_port):
    with override_settings(
        CELERY_BROKER_URL=f"redis://127.0.0.1:{closed_port}/0",
        CELERY_BROKER_TRANSPORT_OPTIONS={},
        READYZ_TIMEOUT_SECONDS=1,
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


@pytest.mark.django_db
def test_readyz_reports_a_missing_broker_folder(client, filesystem_broker):
    filesystem_broker["queue"].rmdir()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["broker"] == "failed"


@pytest.mark.django_db
def test_readyz_reports_a_broken_cache(client, filesystem_broker):
    with override_settings(CACHES=BROKEN_CACHE):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "broker": "ok", "cache": "failed", "failed": ["cache"]}


def test_readyz_reports_a_database_failure_and_never_raises(client, monkeypatch, filesystem_broker):
    def down():
        raise RuntimeError("connection refused")

    monkeypatch.setitem(health.CHECKS, "database", down)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["database"]
