"""The database goes away while the console serves requests: every request answers a clean 503 (the API's
error format, or the translated page) with Retry-After, `/readyz` says the database failed, and once the
database is back the very next requests succeed, with no restart.

The outage is real on the database the suite runs on (`database_outage`):
- PostgreSQL: the serving connection's backend is terminated from a second connection
  (`pg_terminate_backend`) and the database refuses new connections until the end of the outage;
- SQLite: the serving connection is closed and the database file is replaced by a directory, which SQLite
  cannot open, until the end of the outage.
"""

import json
import logging
import shutil
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.test import Client
from psycopg import sql
from rest_framework.test import APIClient

from apps.logs.models import LogEvent
from tests.factories import make_token, make_world
from tests.logs.conftest import event


class PostgresOutage:
    def __init__(self) -> None:
        self.database = connection.settings_dict["NAME"]
        self.down = False

    def _admin(self) -> psycopg.Connection:
        """A second connection, to the maintenance database (the test database refuses connections)."""
        db = connection.settings_dict
        return psycopg.connect(
            host=db.get("HOST") or "127.0.0.1",
            port=db.get("PORT") or 5432,
            user=db.get("USER"),
            password=db.get("PASSWORD"),
            dbname="postgres",
            autocommit=True,
            connect_timeout=10,
        )

    def start(self) -> None:
        with connection.cursor() as cursor:  # the connection that serves the test client's requests
            cursor.execute("SELECT pg_backend_pid()")
            serving_pid = cursor.fetchone()[0]
        with self._admin() as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                    sql.Identifier(self.database)
                )
            )
            self.down = True
            # Waits (up to 10 s) until the backend is gone.
            terminated = admin.execute("SELECT pg_terminate_backend(%s, 10000)", [serving_pid]).fetchone()
            assert terminated == (True,)

    def end(self) -> None:
        if not self.down:
            return
        with self._admin() as admin:
            admin.execute(
                sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(self.database))
            )
        self.down = False


class SqliteOutage:
    def __init__(self, aside: Path) -> None:
        self.path = Path(connection.settings_dict["NAME"])
        self.aside = aside
        self.moved: list[tuple[Path, Path]] = []

    def start(self) -> None:
        connection.close()  # the connection that serves the test client's requests
        self.aside.mkdir()
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.path}{suffix}")
            if source.exists():
                target = self.aside / source.name
                shutil.move(source, target)
                self.moved.append((source, target))
        self.path.mkdir()  # SQLite cannot open a directory: "unable to open database file"

    def end(self) -> None:
        if self.path.is_dir():
            self.path.rmdir()
        for source, target in reversed(self.moved):
            shutil.move(target, source)
        self.moved.clear()


@pytest.fixture
def database_outage(transactional_db, tmp_path):
    """start() makes the test database unreachable for real, end() brings it back (also at teardown,
    before pytest-django flushes the database)."""
    if connection.vendor == "postgresql":
        outage: PostgresOutage | SqliteOutage = PostgresOutage()
    elif connection.vendor == "sqlite":
        outage = SqliteOutage(tmp_path / "database-aside")
    else:
        raise pytest.UsageError(f"no database outage for {connection.vendor}")
    yield outage
    outage.end()


def _post_batch(client: APIClient, request_id: str):
    return client.post(
        "/api/v1/logs/batch",
        data=json.dumps({"events": [event(request_id)]}),
        content_type="application/json",
    )


def _assert_clean_503_page(response, *texts: str) -> None:
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert "no-store" in response["Cache-Control"]
    body = response.content.decode()
    for text in texts:
        assert text in body
    assert "Traceback" not in body and "OperationalError" not in body


def test_database_loss_answers_503_and_service_recovers_by_itself(database_outage, filesystem_broker, caplog):
    world = make_world()
    api = APIClient()
    api.credentials(
        HTTP_AUTHORIZATION=f"Bearer {make_token(world.eng, world.support, 'prompts:read', 'logs:write')}"
    )
    # raise_request_exception (the default): an exception that reached Django's 500 handling fails the test.
    browser = Client()
    browser.force_login(world.eng)
    assert api.get("/api/v1/prompts/").status_code == 200
    assert browser.get("/prompts/").status_code == 200
    assert Client().get("/readyz").status_code == 200

    database_outage.start()
    caplog.set_level(logging.ERROR, logger="apps.common.database")

    listed = api.get("/api/v1/prompts/")  # the dropped connection itself
    assert listed.status_code == 503
    assert listed.json() == {
        "error": {
            "code": "database_unavailable",
            "message": "The database is unavailable. Try again in a few seconds.",
            "details": {"retry_after_seconds": 5},
        }
    }
    assert listed["Retry-After"] == "5"
    sent = _post_batch(api, "during-outage")  # a write while the database refuses connections
    assert sent.status_code == 503
    assert sent.json()["error"]["code"] == "database_unavailable"

    page = browser.get("/prompts/", HTTP_ACCEPT_LANGUAGE="es")
    _assert_clean_503_page(page, "No disponible por el momento", "vuelve a intentarlo dentro de 5 segundos")
    _assert_clean_503_page(browser.get("/prompts/"), "Temporarily unavailable", "try again in 5 seconds")

    ready = Client().get("/readyz")
    assert ready.status_code == 503
    assert ready.json() == {"database": "failed", "broker": "ok", "cache": "ok", "failed": ["database"]}

    logged = [r for r in caplog.records if getattr(r, "event", "") == "database_unavailable"]
    assert {r.path for r in logged} >= {"/api/v1/prompts/", "/api/v1/logs/batch", "/prompts/"}
    assert all(r.levelno == logging.ERROR and r.exc_info is None for r in logged)

    database_outage.end()

    # No restart: the next requests reconnect.
    assert api.get("/api/v1/prompts/").status_code == 200
    retried = _post_batch(api, "during-outage")
    assert retried.status_code == 202
    assert retried.json()["accepted"] == 1  # nothing half-stored by the refused attempt
    assert LogEvent.objects.filter(request_id="during-outage").count() == 1
    assert browser.get("/prompts/").status_code == 200
    assert Client().get("/readyz").json() == {"database": "ok", "broker": "ok", "cache": "ok"}
