"""JOB_BACKEND=local (the embedded default): the trainer in deploy/trainer/ as a subprocess of this host.

Each job is a folder `LOCAL_JOBS_DIR/<key>/` (the key is the tuning request's idempotency key): job.json
(the trainer's command line, written once with O_EXCL, so two dispatches of one key start one job), then
what apps/cloud/jobs/supervisor.py writes: pid.json when the trainer starts, stdout.log (the trainer's
JSON progress lines), stderr.log, exit.json when it ends, and output/ (the adapter and metrics.json).
Polling reads those files: no call per job to anything. The folder is the job's whole state, so the
worker that dispatched a job can restart, and any process on this host can poll or cancel it.

Runs LoRA only (managed tuning of Gemini needs Vertex AI) on local datasets (a path or file:// URI).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess  # nosec B404 # runs the trainer's supervisor: our own command line, never a shell
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from apps.cloud.jobs.base import BackendError, JobState, JobStatus, TrainingSpec

# The hyperparameters the trainer takes, as its command-line flags.
FLAGS = {
    "rank": "--rank",
    "alpha": "--alpha",
    "dropout": "--dropout",
    "epochs": "--epochs",
    "learning_rate": "--learning-rate",
    "max_steps": "--max-steps",
    "batch_size": "--batch-size",
    "seed": "--seed",
}
EXIT_MISSING_DEPENDENCIES = 3
START_GRACE_SECONDS = 30.0
LOG_TAIL_LINES = 20


def _safe(key: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", key):
        raise BackendError(f"job key {key!r}: use letters, digits, '.', '_' and '-' (at most 100).")
    return key


def _local_path(uri: str, what: str) -> str:
    if uri.startswith("file://"):
        uri = uri.removeprefix("file://")
    if "://" in uri:
        raise BackendError(
            f"{what}: the local runner reads files on this machine (a path or file:// URI), not {uri.split('://')[0]}://; "
            "use JOB_BACKEND=vertex for data in Cloud Storage or BigQuery."
        )
    path = Path(uri)
    if not path.is_absolute():
        path = Path(settings.BASE_DIR) / path
    path = path.resolve()
    roots = [
        Path(root).resolve() for root in [*settings.LOCAL_DATASET_DIRS, settings.LOCAL_EXPORTED_DATASETS_DIR]
    ]
    if not any(path.is_relative_to(root) for root in roots):
        # The trainer runs as the worker: it must not become a way to read the worker's other files.
        raise BackendError(
            f"{what}: the local runner reads datasets only under {', '.join(str(r) for r in roots)} "
            "(ATALAYA_LOCAL_DATASET_DIRS)."
        )
    if not path.is_file():
        raise BackendError(f"{what}: no file at {path}.")
    return str(path)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A child that has ended but was not reaped yet is a zombie: not running.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 16_384))
            return handle.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def _when(timestamp: Any) -> datetime | None:
    return datetime.fromtimestamp(timestamp, tz=UTC) if isinstance(timestamp, int | float) else None


class LocalJobBackend:
    name = "local"

    def __init__(self, root: Path, command: Sequence[str]):
        self.root = Path(root)
        self.command = list(command)

    @classmethod
    def from_settings(cls) -> LocalJobBackend:
        return cls(Path(settings.LOCAL_JOBS_DIR), settings.TRAINER_COMMAND)

    def _dir(self, name: str) -> Path:
        return self.root / _safe(name)

    def _argv(self, spec: TrainingSpec, output: Path) -> list[str]:
        argv = [
            *self.command,
            "--base-model",
            spec.base_model,
            "--train",
            _local_path(spec.train_uri, "train_uri"),
            "--output-dir",
            str(output),
        ]
        if spec.validation_uri:
            argv += ["--validation", _local_path(spec.validation_uri, "validation_uri")]
        for key, value in spec.hyperparameters.items():
            if key not in FLAGS:
                raise BackendError(f"hyperparameters.{key}: the trainer takes {', '.join(FLAGS)}.")
            argv += [FLAGS[key], str(value)]
        return argv

    def submit(self, spec: TrainingSpec) -> JobStatus:
        if spec.method != "lora":
            raise BackendError(
                "The local runner trains LoRA adapters; Vertex managed tuning needs JOB_BACKEND=vertex."
            )
        folder = self._dir(spec.key)
        folder.mkdir(parents=True, exist_ok=True)
        argv = self._argv(spec, folder / "output")
        job = {"key": spec.key, "argv": argv, "cwd": str(settings.BASE_DIR), "created_at": time.time()}
        try:
            fd = os.open(folder / "job.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            status = self._status(spec.key)  # started before: adopt it
            if status.state == JobState.QUEUED and self._stalled(folder):
                self._start(folder)  # the dispatcher died between writing job.json and starting it
            return status
        with os.fdopen(fd, "w") as handle:
            json.dump(job, handle)
        self._start(folder)
        return JobStatus(name=spec.key, state=JobState.QUEUED)

    def _stalled(self, folder: Path) -> bool:
        job = _read_json(folder / "job.json") or {}
        return (
            not (folder / "pid.json").exists()
            and time.time() - job.get("created_at", 0) > START_GRACE_SECONDS
        )

    def _start(self, folder: Path) -> None:
        subprocess.Popen(  # noqa: S603  # nosec B603 # our own module and arguments, no shell
            [sys.executable, "-m", "apps.cloud.jobs.supervisor", str(folder)],
            cwd=settings.BASE_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(folder / "supervisor.log", "ab"),  # noqa: SIM115 (the child keeps it)
            start_new_session=True,
        )

    def poll(self, names: Sequence[str]) -> dict[str, JobStatus]:
        found: dict[str, JobStatus] = {}
        for name in names:
            if (self._dir(name) / "job.json").exists():
                found[name] = self._status(name)
        return found

    def _status(self, name: str) -> JobStatus:
        folder = self._dir(name)
        started = _read_json(folder / "pid.json")
        ended = _read_json(folder / "exit.json")
        progress_lines = [line for line in _tail(folder / "stdout.log", 200) if line.startswith("{")]
        progress = None
        for line in reversed(progress_lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("event") == "progress" and event.get("total"):
                progress = min(1.0, float(event["step"]) / float(event["total"]))
                break
        log_tail = "\n".join(_tail(folder / "stdout.log") + _tail(folder / "stderr.log", 10))
        common: dict[str, Any] = {
            "name": name,
            "started_at": _when(started and started.get("started_at")),
            "log_tail": log_tail[-4000:],
            "progress": progress,
        }
        if ended is not None:
            common["ended_at"] = _when(ended.get("ended_at"))
            if ended.get("cancelled"):
                return JobStatus(state=JobState.CANCELLED, **common)
            if ended.get("code") == 0:
                output = folder / "output"
                metrics = _read_json(output / "metrics.json") or {}
                numbers = {
                    k: float(v)
                    for k, v in metrics.items()
                    if isinstance(v, int | float) and not isinstance(v, bool)
                }
                return JobStatus(
                    state=JobState.SUCCEEDED,
                    output_uri=output.resolve().as_uri(),
                    metrics=numbers,
                    **{**common, "progress": 1.0},
                )
            return JobStatus(state=JobState.FAILED, error=self._failure(folder, ended.get("code")), **common)
        if started is None:
            return JobStatus(state=JobState.QUEUED, **common)
        if _alive(int(started["pid"])):
            return JobStatus(state=JobState.RUNNING, **common)
        return JobStatus(
            state=JobState.FAILED,
            error="The trainer's supervisor ended without recording a result (killed?).",
            **common,
        )

    @staticmethod
    def _failure(folder: Path, code: Any) -> str:
        stderr = [line for line in _tail(folder / "stderr.log", 30) if line.strip()]
        if code == EXIT_MISSING_DEPENDENCIES:
            return (
                "\n".join(stderr[-3:])
                or "The training dependencies are not installed: pip install -e '.[train]'."
            )
        last = "\n".join(stderr[-8:])
        return f"The trainer exited with code {code}." + (f"\n{last}" if last else "")

    def cancel(self, name: str) -> None:
        folder = self._dir(name)
        started = _read_json(folder / "pid.json")
        if started is None:
            if (folder / "job.json").exists() and not (folder / "exit.json").exists():
                # Not started yet: record the cancellation so the job never runs.
                (folder / "exit.json").write_text(
                    json.dumps({"code": None, "cancelled": True, "ended_at": time.time()})
                )
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started["pid"]), signal.SIGTERM)
