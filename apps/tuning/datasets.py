"""Datasets exported from annotations (apps.feedback, `atalaya://datasets/<uuid>`) as tuning data.

A tuning request may name one as its training or validation data. It must be a supervised-tuning (chat)
dataset of the adapter's team. At dispatch the local runner gets it written out as a JSONL file under
LOCAL_EXPORTED_DATASETS_DIR (the console's var/datasets); for Vertex AI, export it to Cloud Storage first (its
JSONL download) and name the gs:// file: the console does not upload datasets to Cloud Storage itself.
"""

import re
import uuid
from pathlib import Path

from django.conf import settings

from apps.cloud.jobs.base import BackendError
from apps.common.exceptions import Unprocessable

PREFIX = "atalaya://datasets/"
_URI = re.compile(r"^atalaya://datasets/([0-9a-fA-F-]{32,36})$")


def is_console_dataset(uri: str) -> bool:
    return uri.startswith("atalaya://")


def _dataset(uri: str):
    from apps.feedback.models import Dataset

    match = _URI.match(uri)
    if match is None:
        return None
    try:
        uid = uuid.UUID(match.group(1))
    except ValueError:
        return None
    return Dataset.objects.filter(uid=uid).first()


def console_dataset_check(*, uri: str, team_id: int, field: str) -> None:
    """A 422 unless `uri` names a chat (supervised) dataset of this team, usable by the job backend."""
    from apps.feedback.models import DatasetKind

    dataset = _dataset(uri)
    if dataset is None or dataset.team_id != team_id:
        raise Unprocessable(
            f"{field}: no dataset of this team at {uri} (Annotation → Datasets gives each dataset's URI).",
            code="invalid_" + field,
            details={"field": field},
        )
    if dataset.kind != DatasetKind.SFT:
        raise Unprocessable(
            f"{field}: {dataset} holds preference pairs; tuning takes a supervised (chat) dataset.",
            code="invalid_" + field,
            details={"field": field},
        )
    if settings.JOB_BACKEND != "local":
        raise Unprocessable(
            f"{field}: Vertex AI reads its data from Cloud Storage: download {dataset} as JSONL, upload it to "
            "gs://, and name that file.",
            code="invalid_" + field,
            details={"field": field},
        )


def console_dataset_file(uri: str) -> str:
    """The dataset written out (once: it never changes) as JSONL where the local runner reads datasets."""
    dataset = _dataset(uri)
    if dataset is None:
        raise BackendError(f"the dataset {uri} no longer exists.")
    folder = Path(settings.LOCAL_EXPORTED_DATASETS_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset.uid}-{dataset.content_hash[:12]}.jsonl"
    if not path.exists():
        temporary = path.with_suffix(".tmp")
        temporary.write_text(dataset.content if dataset.content.endswith("\n") else dataset.content + "\n")
        temporary.replace(path)
    return str(path)
