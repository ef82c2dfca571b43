"""The log event as `POST /api/v1/logs/batch` takes it (DESIGN.md), validated with msgspec.

One pass decodes and validates each event; unknown fields are refused. The body is decoded into raw
events first so that one bad event is rejected alone and never blocks the others.
"""

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec
from django.conf import settings

Text = str  # sizes are checked per request (413), see apps.logs.api
Name = Annotated[str, msgspec.Meta(max_length=100)]
Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


class Message(msgspec.Struct, forbid_unknown_fields=True):
    role: Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
    content: Text


class LogEventIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    request_id: Annotated[str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    started_at: datetime
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    input: list[Message] | Text
    ended_at: datetime | None = None
    app: Name = ""
    prompt: Name = ""
    prompt_version: Annotated[int, msgspec.Meta(ge=1, le=2**31 - 1)] | None = None
    output: Text | None = None
    tokens_in: Count | None = None
    tokens_out: Count | None = None
    latency_ms: Count | None = None
    status: Literal["ok", "error", "timeout", "blocked", "cancelled"] = "ok"
    error: Text | None = None
    end_user: Annotated[str, msgspec.Meta(max_length=300)] | None = None
    metadata: dict[str, Any] = msgspec.field(default_factory=dict)


class Batch(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_decoder = msgspec.json.Decoder(Batch)
_event_decoder = msgspec.json.Decoder(LogEventIn)


class BatchError(ValueError):
    pass


# Metadata deeper than this is refused: nobody needs it, and deep nesting makes every JSON encoder and
# decoder on the way (ours, the database's, BigQuery's) recurse.
METADATA_MAX_DEPTH = 32


def batch_decode(body: bytes) -> list[msgspec.Raw]:
    try:
        return _decoder.decode(body).events
    except msgspec.ValidationError as exc:
        raise BatchError(f'The body must be {{"events": [...]}}: {exc}') from None
    except msgspec.DecodeError as exc:
        raise BatchError(f"Malformed JSON: {exc}") from None
    except RecursionError:
        raise BatchError("Malformed JSON: nested too deeply.") from None


def metadata_too_deep(value: Any, limit: int = METADATA_MAX_DEPTH) -> bool:
    """Whether objects and arrays nest more than `limit` levels (walked without recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def _without_nul(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    return value


def event_decode(raw: msgspec.Raw) -> LogEventIn:
    """Raises msgspec.ValidationError naming the field at fault. A NUL character (JSON `\\u0000`), which
    PostgreSQL cannot store in text or JSON, becomes U+FFFD, as over OTLP."""
    try:
        event = _event_decoder.decode(raw)
    except RecursionError:
        raise msgspec.ValidationError(f"metadata nests more than {METADATA_MAX_DEPTH} levels deep") from None
    if metadata_too_deep(event.metadata):
        raise msgspec.ValidationError(f"metadata nests more than {METADATA_MAX_DEPTH} levels deep")
    if b"\\u0000" in bytes(raw):  # depth is bounded now, so the walk below is too
        event = _event_decoder.decode(msgspec.json.encode(_without_nul(msgspec.json.decode(raw))))
    if event.started_at.tzinfo is None or (event.ended_at is not None and event.ended_at.tzinfo is None):
        raise msgspec.ValidationError("Timestamps need a time zone (e.g. 2026-11-21T10:00:00Z)")
    if event.ended_at is not None and event.ended_at < event.started_at:
        raise msgspec.ValidationError("ended_at is before started_at")
    return event


def texts_too_large(event: LogEventIn) -> bool:
    """Whether one of the event's texts is over LOG_TEXT_MAX_BYTES (refused: 413 in a batch, a rejected
    span over OTLP)."""
    limit = settings.LOG_TEXT_MAX_BYTES
    texts = [event.input] if isinstance(event.input, str) else [m.content for m in event.input]
    texts += [event.output or "", event.error or ""]
    return any(len(t) > limit // 4 and len(t.encode()) > limit for t in texts)
