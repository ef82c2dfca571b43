"""Runs one local training job and records how it ended: `python -m apps.cloud.jobs.supervisor JOB_DIR`.

Started detached by apps.cloud.jobs.local.LocalJobBackend (its own session, so a worker restart does not
kill the job). It reads JOB_DIR/job.json (the trainer's command line), writes JOB_DIR/pid.json, runs the
trainer with its stdout (JSON progress lines) in JOB_DIR/stdout.log and stderr in JOB_DIR/stderr.log, and
writes JOB_DIR/exit.json when the trainer ends: its exit code, and whether it was cancelled (SIGTERM to
this process group). Every file is written to a temporary name and renamed, so readers never see half of
one. Imports nothing from Django: it must start fast and run anywhere the trainer runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess  # nosec B404 # runs the trainer: a command line from settings, never a shell
import sys
import time
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def main(job_dir: str) -> int:
    folder = Path(job_dir)
    if (folder / "exit.json").exists():
        return 0  # cancelled before it started
    job = json.loads((folder / "job.json").read_text())
    cancelled = False
    with open(folder / "stdout.log", "ab") as out, open(folder / "stderr.log", "ab") as err:
        # The command line was written by LocalJobBackend from settings.TRAINER_COMMAND and validated
        # fields, into a folder only this service writes.
        child = subprocess.Popen(  # noqa: S603  # nosec B603 # settings.TRAINER_COMMAND + validated fields
            job["argv"], cwd=job.get("cwd") or None, stdout=out, stderr=err, env=job_env(job)
        )

        def on_term(signum: int, frame: object) -> None:
            nonlocal cancelled
            cancelled = True
            child.terminate()

        signal.signal(signal.SIGTERM, on_term)
        write_json(folder / "pid.json", {"pid": os.getpid(), "child": child.pid, "started_at": time.time()})
        code = child.wait()
    write_json(folder / "exit.json", {"code": code, "cancelled": cancelled, "ended_at": time.time()})
    return 0


def job_env(job: dict) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **job.get("env", {})})
    return env


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
