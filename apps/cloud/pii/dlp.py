"""PII_SCANNER=dlp: Cloud DLP (Sensitive Data Protection) through the google-cloud-dlp client.

How a batch of texts travels:

- Batching. Texts go to DLP as a `Table` item with one column and one row per text (or per chunk
  of a long text). A table keeps every text in its own cell, so a finding can never straddle two
  texts, DLP reports the row of each finding (`table_location.row_index`) and offsets relative to
  the cell, and `deidentify_content` answers the same table back, row for row. Joining texts into
  one string with separators would need offset bookkeeping and could let a pattern run across a
  separator. Rows are packed greedily into as few requests as fit under DLP's 0.5 MB request limit
  (measured on the serialized request, with a margin, using the stricter 500,000-byte reading) and
  under 50,000 cells per table.
- Chunking. A single text over the limit is cut into chunks at a newline or other whitespace near
  the cut (a UTF-8 boundary if a very long run has none), and the chunks' findings are re-based
  to offsets in the original text. Offsets come from `location.codepoint_range` (Unicode code
  points, which is how Python indexes `str`), never `byte_range`.
- 3,000 findings per request. When a response says `findings_truncated`, or carries 3,000
  findings or more, the request is split in two (rows, or the chunk itself) and each half is sent
  again, so no findings are lost; de-identification then runs on the same, smaller requests.
- Redaction. REPLACE and MASK use `deidentify_content` (ReplaceWithInfoTypeConfig, and
  CharacterMaskConfig masking every character). Our AUTH_TOKEN groups several DLP secret
  detectors; those get a ReplaceValueConfig "[AUTH_TOKEN]" so the text reads as it does with the
  local scanner. TOKEN is applied here, with `base.redact`, from the inspect findings: the token
  is HMAC-SHA256 under the team's key and DLP's CryptoHashConfig gives a different format (and
  would need the key sent in every request), so computing it locally is the only way the output
  equals the local scanner's and the key never leaves the process.
- DLP never echoes text back: `include_quote` is false; findings carry offsets only.
- Failures. Every call passes `timeout=DLP_TIMEOUT_SECONDS` (a deadline across retries) and a
  retry policy: by default a short google.api_core Retry on UNAVAILABLE only; `DLP_RETRY=False`
  passes `retry=None` (the tests). Errors from the service, gRPC, or fetching credentials raise
  ScannerUnavailable: the caller quarantines the events and retries later, so nothing is stored
  raw and nothing is dropped (a permanent error such as PERMISSION_DENIED stays visible in the
  quarantine with its status code).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from google.api_core import exceptions as api_exceptions
from google.api_core import retry as api_retry
from google.auth import exceptions as auth_exceptions
from google.cloud import dlp_v2

from apps.cloud.pii.base import (
    INFO_TYPES,
    Finding,
    RedactionMode,
    RedactionPolicy,
    ScannerUnavailable,
    ScanResult,
    redact,
)

logger = logging.getLogger(__name__)

REQUEST_LIMIT_BYTES = 500_000  # DLP: 0.5 MB per content request
REQUEST_MARGIN_BYTES = 4_096
MAX_FINDINGS_PER_REQUEST = 3_000  # DLP: findings per inspect request
MAX_CELLS_PER_TABLE = 50_000  # DLP: values per Table item
# Tags and length prefixes of Table.rows[i].values[0].string_value: at most 3 × (1 + 3) bytes for a
# row under 2 MB, so `content + 16 per row` bounds the table's size; the margin covers the growth
# of the item's and table's own length prefixes.
ROW_OVERHEAD_BYTES = 16
MIN_SPLIT_BYTES = 256  # below this a chunk that still overflows 3,000 findings is not split again
COLUMN = "text"

# Our infoType → DLP's built-in detectors. The names coincide except AUTH_TOKEN, which stands for
# the secrets family; findings of any of these are reported (and replaced) as AUTH_TOKEN.
DLP_INFO_TYPES: dict[str, tuple[str, ...]] = {
    "AUTH_TOKEN": (
        "AUTH_TOKEN",
        "GCP_API_KEY",
        "GCP_CREDENTIALS",
        "AWS_CREDENTIALS",
        "AZURE_AUTH_TOKEN",
        "JSON_WEB_TOKEN",
        "OAUTH_CLIENT_SECRET",
        "ENCRYPTION_KEY",
        "BASIC_AUTH_HEADER",
    ),
}

# Worth retrying soon; anything else is still quarantined (never stored raw) but logged as an error.
TRANSIENT = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.DeadlineExceeded,
    api_exceptions.ResourceExhausted,
    api_exceptions.InternalServerError,
    api_exceptions.Aborted,
    api_exceptions.RetryError,
    auth_exceptions.TransportError,
)
TRANSIENT_CODES = {"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED"}
FAILURES = (
    api_exceptions.GoogleAPICallError,
    api_exceptions.RetryError,
    grpc.RpcError,
    auth_exceptions.TransportError,
    auth_exceptions.RefreshError,
)

_LIKELIHOOD_NAMES = {level.value: level.name for level in dlp_v2.Likelihood}
_SURROGATES = re.compile("[\ud800-\udfff]")


def default_retry(timeout: float) -> api_retry.Retry:
    """Production: a few quick retries on UNAVAILABLE within the call's deadline, nothing else."""
    return api_retry.Retry(
        predicate=api_retry.if_exception_type(api_exceptions.ServiceUnavailable),
        initial=0.2,
        maximum=2.0,
        multiplier=2.0,
        timeout=timeout,
    )


def dlp_names(info_types: Sequence[str]) -> list[str]:
    names: list[str] = []
    for name in info_types:
        for dlp_name in DLP_INFO_TYPES.get(name, (name,)):
            if dlp_name not in names:
                names.append(dlp_name)
    return names


@dataclass(frozen=True)
class _Piece:
    """A text, or a chunk of one, sent as one table row."""

    text_index: int
    offset: int  # code point offset of this piece in its text
    text: str
    size: int  # UTF-8 bytes


class DlpScanner:
    name = "dlp"

    def __init__(
        self,
        client: dlp_v2.DlpServiceClient,
        *,
        project: str,
        location: str = "global",
        timeout: float = 30.0,
        retry: api_retry.Retry | None = None,
        info_types: Sequence[str] = INFO_TYPES,
        request_limit_bytes: int = REQUEST_LIMIT_BYTES,
    ) -> None:
        self.client = client
        self.parent = f"projects/{project}/locations/{location}"
        self.timeout = timeout
        self.retry = retry
        self.info_types = tuple(info_types)
        self.request_limit_bytes = request_limit_bytes
        self._to_ours = {dlp: ours for ours in self.info_types for dlp in DLP_INFO_TYPES.get(ours, (ours,))}
        self._inspect_config = dlp_v2.InspectConfig(
            info_types=[dlp_v2.InfoType(name=n) for n in dlp_names(self.info_types)],
            min_likelihood=dlp_v2.Likelihood.POSSIBLE,
            include_quote=False,
        )

    @classmethod
    def from_settings(cls, credentials: Any = None) -> DlpScanner:
        """The production client: credentials from the environment (Application Default
        Credentials) unless given, Google's endpoint unless DLP_API_ENDPOINT is set."""
        project = settings.GOOGLE_CLOUD_PROJECT
        if not project:
            raise ImproperlyConfigured("PII_SCANNER=dlp needs GOOGLE_CLOUD_PROJECT")
        if credentials is None and settings.DLP_ANONYMOUS_CREDENTIALS:
            from google.auth.credentials import AnonymousCredentials

            credentials = AnonymousCredentials()  # only for the in-repo fake
        endpoint = settings.DLP_API_ENDPOINT
        client = dlp_v2.DlpServiceClient(
            credentials=credentials,
            client_options={"api_endpoint": endpoint} if endpoint else None,
        )
        timeout = float(settings.DLP_TIMEOUT_SECONDS)
        return cls(
            client,
            project=project,
            location=settings.DLP_LOCATION or "global",
            timeout=timeout,
            retry=default_retry(timeout) if settings.DLP_RETRY else None,
        )

    # -- the scan -------------------------------------------------------------------------------

    def scan(self, texts: Sequence[str], policy: RedactionPolicy) -> list[ScanResult]:
        texts = [_SURROGATES.sub("\ufffd", text) for text in texts]  # same length, encodable
        findings: list[list[Finding]] = [[] for _ in texts]
        parts: list[list[tuple[int, str]]] = [[] for _ in texts]  # (offset, redacted piece)
        deidentify = policy.mode is not RedactionMode.TOKEN
        deidentify_config = self._deidentify_config(policy) if deidentify else None
        budget = self._content_budget(deidentify_config)

        chunk_bytes = budget - ROW_OVERHEAD_BYTES
        pieces = [piece for i, text in enumerate(texts) for piece in self._split(i, 0, text, chunk_bytes)]
        for batch in self._pack(pieces, budget):
            for rows, row_findings in self._inspect(batch):
                for piece, found in zip(rows, row_findings, strict=True):
                    findings[piece.text_index].extend(found)
                if deidentify_config is not None:
                    for piece, redacted in zip(rows, self._deidentify(rows, deidentify_config), strict=True):
                        parts[piece.text_index].append((piece.offset, redacted))

        results = []
        for i, text in enumerate(texts):
            found = sorted(findings[i], key=lambda f: (f.start, f.end, f.info_type))
            if deidentify:
                redacted = "".join(part for _, part in sorted(parts[i]))
            else:
                redacted = redact(text, found, policy)
            results.append(ScanResult(redacted=redacted, findings=tuple(found)))
        return results

    # -- requests -------------------------------------------------------------------------------

    def _inspect(self, rows: list[_Piece]) -> list[tuple[list[_Piece], list[list[Finding]]]]:
        """Findings per row; splits the request while DLP reports it truncated."""
        request = dlp_v2.InspectContentRequest(
            parent=self.parent, inspect_config=self._inspect_config, item=self._table(rows)
        )
        response = self._call(self.client.inspect_content, request)
        # Up to 3,000 findings: read the protobuf message itself, not proto-plus wrappers (far slower).
        result = dlp_v2.InspectContentResponse.pb(response).result
        if result.findings_truncated or len(result.findings) >= MAX_FINDINGS_PER_REQUEST:
            return [out for half in self._halve(rows) for out in self._inspect(half)]
        per_row: list[list[Finding]] = [[] for _ in rows]
        for finding in result.findings:
            locations = finding.location.content_locations
            row = locations[0].record_location.table_location.row_index if locations else 0
            if not 0 <= row < len(rows):
                raise ScannerUnavailable(f"DLP reported a finding in row {row} of {len(rows)}")
            piece, span = rows[row], finding.location.codepoint_range
            per_row[row].append(
                Finding(
                    info_type=self._to_ours.get(finding.info_type.name, finding.info_type.name),
                    start=piece.offset + span.start,
                    end=piece.offset + span.end,
                    likelihood=_LIKELIHOOD_NAMES.get(finding.likelihood, "LIKELIHOOD_UNSPECIFIED"),
                )
            )
        return [(rows, per_row)]

    def _deidentify(self, rows: list[_Piece], config: dlp_v2.DeidentifyConfig) -> list[str]:
        request = dlp_v2.DeidentifyContentRequest(
            parent=self.parent,
            deidentify_config=config,
            inspect_config=self._inspect_config,
            item=self._table(rows),
        )
        response = dlp_v2.DeidentifyContentResponse.pb(self._call(self.client.deidentify_content, request))
        out = [row.values[0].string_value if row.values else "" for row in response.item.table.rows]
        if len(out) != len(rows):
            raise ScannerUnavailable(f"DLP de-identified {len(out)} rows of {len(rows)}")
        return out

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        try:
            return method(request=request, retry=self.retry, timeout=self.timeout)
        except FAILURES as exc:
            code_name = _status_name(exc)
            # The summary names the error only: a service message is not echoed into our records.
            summary = f"Cloud DLP {type(exc).__name__}" + (f" ({code_name})" if code_name else "")
            if isinstance(exc, TRANSIENT) or code_name in TRANSIENT_CODES:
                logger.warning("%s: the batch stays quarantined", summary)
            else:
                logger.error("%s: the batch stays quarantined until this is fixed", summary)
            raise ScannerUnavailable(summary) from exc

    def _deidentify_config(self, policy: RedactionPolicy) -> dlp_v2.DeidentifyConfig:
        Transformation = dlp_v2.InfoTypeTransformations.InfoTypeTransformation
        if policy.mode is RedactionMode.MASK:
            mask = dlp_v2.PrimitiveTransformation(
                character_mask_config=dlp_v2.CharacterMaskConfig(masking_character=policy.mask_char)
            )
            transformations = [Transformation(primitive_transformation=mask)]  # every requested type
        else:
            transformations = []
            by_name = []
            for ours in self.info_types:
                dlp = DLP_INFO_TYPES.get(ours, (ours,))
                if dlp == (ours,):
                    by_name.append(dlp_v2.InfoType(name=ours))
                    continue
                replace = dlp_v2.PrimitiveTransformation(
                    replace_config=dlp_v2.ReplaceValueConfig(new_value=dlp_v2.Value(string_value=f"[{ours}]"))
                )
                transformations.append(
                    Transformation(
                        info_types=[dlp_v2.InfoType(name=n) for n in dlp], primitive_transformation=replace
                    )
                )
            if by_name:
                with_name = dlp_v2.PrimitiveTransformation(
                    replace_with_info_type_config=dlp_v2.ReplaceWithInfoTypeConfig()
                )
                transformations.insert(
                    0, Transformation(info_types=by_name, primitive_transformation=with_name)
                )
        return dlp_v2.DeidentifyConfig(
            info_type_transformations=dlp_v2.InfoTypeTransformations(transformations=transformations)
        )

    # -- sizes, packing and chunking --------------------------------------------------------------

    def _table(self, rows: Sequence[_Piece]) -> dlp_v2.ContentItem:
        item = dlp_v2.ContentItem.pb()()  # built as protobuf: proto-plus is slow per row
        item.table.headers.add().name = COLUMN
        for piece in rows:
            item.table.rows.add().values.add().string_value = piece.text
        return dlp_v2.ContentItem.wrap(item)

    def _content_budget(self, deidentify_config: dlp_v2.DeidentifyConfig | None) -> int:
        """Bytes of row content that fit in one request beside its configuration."""
        empty = dlp_v2.DeidentifyContentRequest(
            parent=self.parent,
            deidentify_config=deidentify_config,
            inspect_config=self._inspect_config,
            item=self._table([]),
        )
        budget = self.request_limit_bytes - REQUEST_MARGIN_BYTES - _size(empty)
        if budget < 1024:
            raise ImproperlyConfigured("DLP request limit leaves no room for content")
        return budget

    def _pack(self, pieces: list[_Piece], budget: int) -> list[list[_Piece]]:
        batches: list[list[_Piece]] = []
        batch: list[_Piece] = []
        used = 0
        for piece in pieces:
            cost = piece.size + ROW_OVERHEAD_BYTES
            if batch and (used + cost > budget or len(batch) >= MAX_CELLS_PER_TABLE):
                batches.append(batch)
                batch, used = [], 0
            batch.append(piece)
            used += cost
        if batch:
            batches.append(batch)
        return batches

    def _halve(self, rows: list[_Piece]) -> list[list[_Piece]]:
        if len(rows) > 1:
            middle = len(rows) // 2
            return [rows[:middle], rows[middle:]]
        (piece,) = rows
        if piece.size <= MIN_SPLIT_BYTES:
            raise ScannerUnavailable(
                f"Cloud DLP truncated the findings of a {piece.size}-byte chunk; it cannot be split further"
            )
        # A window of 5/8 of the chunk, cut within its last eighth: two pieces, each at most 5/8.
        halves = self._split(piece.text_index, piece.offset, piece.text, piece.size // 2 + piece.size // 8)
        return [[chunk] for chunk in halves]

    @staticmethod
    def _split(text_index: int, offset: int, text: str, budget: int) -> list[_Piece]:
        """Cut a text into pieces of at most `budget` UTF-8 bytes, at whitespace where possible."""
        if not text:
            return []
        data = text.encode("utf-8")
        if len(data) <= budget:
            return [_Piece(text_index, offset, text, len(data))]
        pieces = []
        start = 0
        while start < len(data):
            end = min(start + budget, len(data))
            if end < len(data):
                end = _safe_cut(data, start, end)
            chunk = data[start:end].decode("utf-8")
            pieces.append(_Piece(text_index, offset, chunk, end - start))
            offset += len(chunk)
            start = end
        return pieces


def _safe_cut(data: bytes, start: int, end: int) -> int:
    """A cut point in (start, end]: after a newline, else after whitespace, within the last eighth of
    the window; else the last UTF-8 character boundary. ASCII bytes never occur inside a multi-byte
    UTF-8 sequence, so cutting after one is always a character boundary."""
    floor = max(start + 1, end - max(64, (end - start) // 8))
    newline = data.rfind(b"\n", floor, end)
    if newline >= 0:
        return newline + 1
    space = max(data.rfind(ws, floor, end) for ws in (b" ", b"\t", b"\r", b"\f", b"\v"))
    if space >= 0:
        return space + 1
    while end > start + 1 and (data[end] & 0xC0) == 0x80:  # inside a multi-byte character
        end -= 1
    return end


def _status_name(exc: BaseException) -> str | None:
    if isinstance(exc, api_exceptions.GoogleAPICallError):
        status = exc.grpc_status_code
        return status.name if status is not None else None
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        try:
            return exc.code().name  # type: ignore[attr-defined]
        except Exception:  # an RpcError that is not a Call
            return None
    return None


def _size(message: Any) -> int:
    return type(message).pb(message).ByteSize()
