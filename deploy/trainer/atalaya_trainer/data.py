"""Reading and validating a JSONL chat dataset (standard library only, so it runs before torch is imported).

Each non-blank line is one conversation: ``{"messages": [{"role": "system" | "user" | "assistant",
"content": "..."}, ...]}`` with at least one assistant message (the turns the adapter learns). Other keys on
the line are ignored. The first problem found is reported with the file and the line number.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

ROLES = ("system", "user", "assistant")


class BadInput(ValueError):
    """Input the trainer refuses (exit 2): arguments, datasets, the base model."""


class DatasetError(BadInput):
    """A dataset that cannot be trained on; the message names the file and the line."""


@dataclass(frozen=True)
class Conversation:
    line: int
    messages: list[dict[str, str]]


def _check_line(obj: object) -> str | None:
    """What is wrong with one parsed line, or None."""
    if not isinstance(obj, dict):
        return f"expected a JSON object, got {type(obj).__name__}"
    if "messages" not in obj:
        return 'missing "messages"'
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        return '"messages" must be a non-empty list'
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"message {index} must be an object with role and content"
        role = message.get("role")
        if role not in ROLES:
            return f"message {index}: role must be one of {', '.join(ROLES)} (got {role!r})"
        if not isinstance(message.get("content"), str):
            return f'message {index}: "content" must be a string'
    if not any(message["role"] == "assistant" for message in messages):
        return "no assistant message (nothing to learn from this conversation)"
    return None


def read_conversations(path: Path, *, label: str) -> list[Conversation]:
    """All conversations in ``path``; raises DatasetError on the first bad line or an empty file."""
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError(f"{label} dataset {path}: file not found") from None
    except OSError as exc:
        raise DatasetError(f"{label} dataset {path}: cannot be read ({exc.strerror})") from None
    conversations: list[Conversation] = []
    with handle:
        try:
            for number, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DatasetError(
                        f"{label} dataset {path} line {number}: not valid JSON ({exc.msg} at column {exc.colno})"
                    ) from None
                problem = _check_line(obj)
                if problem:
                    raise DatasetError(f"{label} dataset {path} line {number}: {problem}")
                messages = [{"role": m["role"], "content": m["content"]} for m in obj["messages"]]
                conversations.append(Conversation(line=number, messages=messages))
        except UnicodeDecodeError:
            raise DatasetError(f"{label} dataset {path}: not UTF-8 text") from None
    if not conversations:
        raise DatasetError(f"{label} dataset {path}: no conversations (the file is empty)")
    return conversations
