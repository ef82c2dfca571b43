import socket

import pytest


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def fresh_gauges(settings):
    """Gauges read at every scrape (not from the per-process cache)."""
    settings.METRICS_STATE_CACHE_SECONDS = 0


@pytest.fixture
def filesystem_broker(settings, tmp_path):
    """The embedded broker on folders of this test only, whatever broker the suite runs on."""
    folders = {name: tmp_path / name for name in ("queue", "control")}
    for folder in folders.values():
        folder.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://localhost//"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "control_folder": str(folders["control"]),
    }
    return folders
