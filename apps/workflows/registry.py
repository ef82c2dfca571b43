"""What happens to a subject when its request closes. Each app registers its subject kinds."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import models


@dataclass(frozen=True)
class SubjectHandler:
    model: type[models.Model]
    on_approved: Callable[..., None]
    on_rejected: Callable[..., None]
    on_changes_requested: Callable[..., None]
    on_withdrawn: Callable[..., None]
    url: Callable[[Any], str] | None = None


_handlers: dict[str, SubjectHandler] = {}


def subject_kind_register(kind: str, handler: SubjectHandler) -> None:
    _handlers[kind] = handler


def subject_handler(kind: str) -> SubjectHandler:
    try:
        return _handlers[kind]
    except KeyError:
        raise LookupError(f"No handler registered for subject kind {kind!r}") from None


# The evaluation gate (apps/evaluation/gates.py registers it): (subject_kind, subject, team) → a verdict with
# `.passed`, `.reason` and `.as_details()`, or None when the subject's policy asks for no evaluation.
_gate: list[Callable[..., Any]] = []


def evaluation_gate_register(gate: Callable[..., Any]) -> None:
    _gate[:] = [gate]


def evaluation_gate() -> Callable[..., Any] | None:
    return _gate[0] if _gate else None
