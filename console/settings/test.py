"""Settings for the test suite: fast hashing, a file-backed SQLite test database.

The test database is a file (not in memory) so that a real Celery worker process started by
the integration tests reads the same rows as the test.
"""

import os
import tempfile
from pathlib import Path

from console.env import env

from .base import *  # noqa: F403
from .base import CACHES, CELERY_BROKER_TRANSPORT_OPTIONS, CELERY_BROKER_URL, DATABASES, VAR_DIR

SECRET_KEY = "atalaya-tests-only"  # nosec B105 # the test suite's own key
VAR_DIR.mkdir(parents=True, exist_ok=True)  # makemigrations --check opens the default database there
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default="")
# High enough never to touch the suite; the rate-limit tests set their own (tests/api/test_rate_limits.py).
API_RATE_LIMIT = "1000000/min"
API_WRITE_RATE_LIMIT = "1000000/min"

TEST_VAR_DIR = Path(os.environ.get("ATALAYA_TEST_VAR_DIR", tempfile.gettempdir())) / "atalaya-tests"
TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(TEST_VAR_DIR / "test.sqlite3")}

STATIC_ROOT = TEST_VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
CELERY_TASK_ALWAYS_EAGER = False
# One embedded broker folder per test process (pytest-xdist runs several); the integration tests
# start a real worker on the same folder.
if CELERY_BROKER_URL.startswith("filesystem"):
    BROKER_DIR = TEST_VAR_DIR / f"broker-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    for sub in ("queue", "control"):
        (BROKER_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }

# On Redis (the second CI pass), each test process gets its own pair of Redis databases, so that
# parallel processes neither consume each other's tasks nor flush each other's cache. A worker
# started by the integration tests inherits PYTEST_XDIST_WORKER and so computes the same pair.
_XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_REDIS_SLOT = int(_XDIST_WORKER[2:]) + 1 if _XDIST_WORKER.startswith("gw") else 0


def _redis_db(url: str, db: int) -> str:
    """The same Redis server, database number `db`."""
    head, _, _ = url.partition("?")
    scheme, sep, rest = head.partition("://")
    hostport = rest.split("/", 1)[0]
    return f"{scheme}{sep}{hostport}/{db}"


if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_URL = _redis_db(CELERY_BROKER_URL, 2 * _REDIS_SLOT)
    # Celery reads the CELERY_BROKER_URL environment variable before this setting.
    os.environ["CELERY_BROKER_URL"] = CELERY_BROKER_URL
    # Look for unacknowledged messages past their visibility timeout every second (kombu's default is
    # every 100 s), so that a test with a short CELERY_BROKER_VISIBILITY_TIMEOUT sees the redelivery.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **CELERY_BROKER_TRANSPORT_OPTIONS,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
_cache_location = CACHES["default"].get("LOCATION", "")
if CACHES["default"]["BACKEND"].endswith("RedisCache") and isinstance(_cache_location, str):
    CACHES["default"]["LOCATION"] = _redis_db(_cache_location, 2 * _REDIS_SLOT + 1)
