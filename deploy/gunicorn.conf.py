"""gunicorn settings for the image (copied to /app/gunicorn.conf.py, which gunicorn reads by default).

Prometheus multiprocess mode for the web process only: every gunicorn worker writes its counters and
histograms under PROMETHEUS_MULTIPROC_DIR, /metrics adds them up (apps/common/metrics.py). The folder is
emptied when the master starts, and a dead worker's live gauges are dropped.
"""

import os
import shutil
from pathlib import Path

MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", "/tmp/atalaya-prometheus")  # noqa: S108


def on_starting(server):
    shutil.rmtree(MULTIPROC_DIR, ignore_errors=True)
    Path(MULTIPROC_DIR).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
