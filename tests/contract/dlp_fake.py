"""An in-repo fake of Cloud DLP's gRPC service, for the real google-cloud-dlp client.

It serves `google.privacy.dlp.v2.DlpService` (InspectContent and DeidentifyContent) with a generic
handler: requests are read with the proto-plus classes' `deserialize` and responses written from
their protobuf messages, so no generated stubs are needed. It listens with TLS on 127.0.0.1 (a fresh port per server) with the
test certificate from tests/contract/tls.py.

It fakes the wire protocol, not the detection: a tiny deterministic matcher finds a few infoTypes.
What it does honour, as DLP does: the request's info types (none = all it knows), min_likelihood
(unset = POSSIBLE), include_quote, `value` and `Table` items (findings located by row, offsets
relative to the cell, `codepoint_range` and UTF-8 `byte_range`), InfoTypeTransformations with
ReplaceWithInfoTypeConfig, ReplaceValueConfig and CharacterMaskConfig, 3,000 findings per request
(`findings_truncated` beyond, and de-identification that transforms only that many, which is the
failure a scanner must avoid), and the 0.5 MB request limit (INVALID_ARGUMENT over it, measured on
the serialized request with the stricter 500,000-byte reading). `fail_next(n)` makes the next n
calls fail with UNAVAILABLE (or another code), `delay_seconds` makes it answer late; every call is
recorded for assertions.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.cloud import dlp_v2

from tests.contract.tls import LocalhostTls

SERVICE = "google.privacy.dlp.v2.DlpService"
REQUEST_LIMIT_BYTES = 500_000
MAX_FINDINGS_PER_REQUEST = 3_000

Likelihood = dlp_v2.Likelihood
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _dni_likelihood(match: re.Match[str]) -> Likelihood:
    number, letter = match.group()[:8], match.group()[8]
    return Likelihood.LIKELY if _DNI_LETTERS[int(number) % 23] == letter else Likelihood.UNLIKELY


# (DLP infoType, pattern, likelihood: a constant or a function of the match)
RULES: list[tuple[str, re.Pattern[str], Likelihood | Callable[[re.Match[str]], Likelihood]]] = [
    ("EMAIL_ADDRESS", re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), Likelihood.VERY_LIKELY),
    ("US_SOCIAL_SECURITY_NUMBER", re.compile(r"\b\d{3}-\d{2}-\d{4}\b"), Likelihood.LIKELY),
    ("IP_ADDRESS", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), Likelihood.LIKELY),
    ("PHONE_NUMBER", re.compile(r"\+\d{2} \d{3} \d{3} \d{3}\b"), Likelihood.LIKELY),
    ("SPAIN_DNI_NUMBER", re.compile(r"\b\d{8}[A-Z]\b"), _dni_likelihood),  # UNLIKELY with a wrong letter
    ("GCP_API_KEY", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), Likelihood.VERY_LIKELY),
]


@dataclass(frozen=True)
class Call:
    method: str  # "InspectContent" | "DeidentifyContent"
    size: int  # bytes of the serialized request
    request: Any
    status: str = "OK"


@dataclass
class _Hit:
    row: int
    info_type: str
    start: int  # code points, relative to the cell
    end: int
    likelihood: Likelihood


class FakeDlp:
    def __init__(self, tls: LocalhostTls, request_limit_bytes: int = REQUEST_LIMIT_BYTES) -> None:
        self.tls = tls
        self.request_limit_bytes = request_limit_bytes
        self.calls: list[Call] = []
        self._failures: list[tuple[grpc.StatusCode, str | None]] = []
        self.delay_seconds = 0.0  # answer this late (to exercise the client's timeout)
        self._lock = threading.Lock()
        self._server: grpc.Server | None = None
        self.endpoint = ""

    # -- control ----------------------------------------------------------------------------------

    def start(self) -> FakeDlp:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "InspectContent": self._handler("InspectContent", dlp_v2.InspectContentRequest),
                        "DeidentifyContent": self._handler(
                            "DeidentifyContent", dlp_v2.DeidentifyContentRequest
                        ),
                    },
                ),
            )
        )
        credentials = grpc.ssl_server_credentials([(self.tls.key_pem, self.tls.cert_pem)])
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        self._server = server
        self.endpoint = f"127.0.0.1:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None

    def fail_next(
        self, n: int = 1, code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE, method: str | None = None
    ) -> None:
        """Fail the next n calls (of `method` only, when given) with `code`."""
        with self._lock:
            self._failures.extend([(code, method)] * n)

    def requests(self, method: str | None = None) -> list[Any]:
        return [c.request for c in self.calls if method is None or c.method == method]

    # -- serving ----------------------------------------------------------------------------------

    def _handler(self, method: str, request_cls: Any) -> grpc.RpcMethodHandler:
        serve = {"InspectContent": self._inspect, "DeidentifyContent": self._deidentify}[method]

        def handle(raw: tuple[int, Any], context: grpc.ServicerContext) -> Any:
            size, request = raw
            with self._lock:
                failure = None
                for i, (_code, only) in enumerate(self._failures):
                    if only in (None, method):
                        failure = self._failures.pop(i)[0]
                        break
                status = failure.name if failure else "OK"
                if failure is None and size > self.request_limit_bytes:
                    status = "INVALID_ARGUMENT"
                self.calls.append(Call(method, size, request, status))
            if self.delay_seconds:
                time.sleep(self.delay_seconds)
            if failure is not None:
                context.abort(failure, "The service is currently unavailable (fake).")
            if size > self.request_limit_bytes:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Request size {size} bytes exceeds the limit of {self.request_limit_bytes} bytes.",
                )
            if not request.parent.startswith("projects/"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "parent must be projects/…")
            return serve(request, context)

        return grpc.unary_unary_rpc_method_handler(
            handle,
            request_deserializer=lambda data: (len(data), request_cls.deserialize(data)),
            response_serializer=lambda message: message.SerializeToString(),
        )

    def _inspect(self, request: dlp_v2.InspectContentRequest, context: Any) -> Any:
        cells, is_table = _cells(request.item, context)
        hits, truncated = _detect(cells, request.inspect_config)
        include_quote = request.inspect_config.include_quote
        header = request.item.table.headers[0].name if is_table and request.item.table.headers else ""
        # Built as protobuf, not proto-plus (thousands of findings would take seconds).
        response = dlp_v2.InspectContentResponse.pb()()
        response.result.findings_truncated = truncated
        row, char_at, byte_at = -1, 0, 0  # walk each cell once for UTF-8 byte offsets (hits are sorted)
        for hit in hits:
            cell = cells[hit.row]
            if hit.row != row:
                row, char_at, byte_at = hit.row, 0, 0
            byte_at += len(cell[char_at : hit.start].encode())
            char_at = hit.start
            finding = response.result.findings.add()
            finding.info_type.name = hit.info_type
            finding.likelihood = hit.likelihood
            if include_quote:
                finding.quote = cell[hit.start : hit.end]
            finding.location.codepoint_range.start = hit.start
            finding.location.codepoint_range.end = hit.end
            finding.location.byte_range.start = byte_at
            finding.location.byte_range.end = byte_at + len(cell[hit.start : hit.end].encode())
            if is_table:
                content = finding.location.content_locations.add()
                content.container_name = "table"
                content.record_location.field_id.name = header
                content.record_location.table_location.row_index = hit.row
        return response

    def _deidentify(self, request: dlp_v2.DeidentifyContentRequest, context: Any) -> Any:
        config = request.deidentify_config
        if "info_type_transformations" not in config:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake supports info_type_transformations only")
        transform = _transformer(config.info_type_transformations.transformations, context)
        cells, is_table = _cells(request.item, context)
        hits, _ = _detect(cells, request.inspect_config)
        by_row: dict[int, list[_Hit]] = {}
        for hit in hits:
            by_row.setdefault(hit.row, []).append(hit)
        out = []
        for row, cell in enumerate(cells):
            pieces, cursor = [], 0
            for hit in _non_overlapping(by_row.get(row, [])):
                pieces.append(cell[cursor : hit.start])
                pieces.append(transform(hit.info_type, cell[hit.start : hit.end]))
                cursor = hit.end
            pieces.append(cell[cursor:])
            out.append("".join(pieces))
        response = dlp_v2.DeidentifyContentResponse.pb()()
        if is_table:
            for header in request.item.table.headers:
                response.item.table.headers.add().name = header.name
            for value in out:
                response.item.table.rows.add().values.add().string_value = value
        else:
            response.item.value = out[0]
        return response


def _cells(item: dlp_v2.ContentItem, context: Any) -> tuple[list[str], bool]:
    pb = dlp_v2.ContentItem.pb(item)
    kind = pb.WhichOneof("data_item")
    if kind == "table":
        cells = []
        for row in pb.table.rows:
            if len(row.values) != 1:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake reads one-column tables")
            cells.append(row.values[0].string_value)
        return cells, True
    if kind == "value":
        return [pb.value], False
    context.abort(grpc.StatusCode.INVALID_ARGUMENT, "item must be a value or a table")
    raise AssertionError("unreachable")


def _detect(cells: list[str], config: dlp_v2.InspectConfig) -> tuple[list[_Hit], bool]:
    wanted = {t.name for t in config.info_types}
    floor = config.min_likelihood or Likelihood.POSSIBLE
    limit = MAX_FINDINGS_PER_REQUEST
    if config.limits.max_findings_per_request:
        limit = min(limit, config.limits.max_findings_per_request)
    hits = []
    for row, cell in enumerate(cells):
        for info_type, pattern, likelihood in RULES:
            if wanted and info_type not in wanted:
                continue
            for match in pattern.finditer(cell):
                level = likelihood(match) if callable(likelihood) else likelihood
                if level >= floor:
                    hits.append(_Hit(row, info_type, match.start(), match.end(), level))
    hits.sort(key=lambda h: (h.row, h.start, h.end))
    return hits[:limit], len(hits) > limit


def _non_overlapping(hits: list[_Hit]) -> list[_Hit]:
    chosen: list[_Hit] = []
    for hit in sorted(hits, key=lambda h: (h.start, -(h.end - h.start))):
        if not chosen or hit.start >= chosen[-1].end:
            chosen.append(hit)
    return chosen


def _transformer(rules: Any, context: Any) -> Callable[[str, str], str]:
    """The request's InfoTypeTransformations as a function (info_type, value) → replacement."""
    compiled: list[tuple[frozenset[str], Callable[[str, str], str]]] = []
    for rule in rules:
        names = frozenset(t.name for t in rule.info_types)  # empty: every requested infoType
        primitive = rule.primitive_transformation
        if "replace_with_info_type_config" in primitive:
            compiled.append((names, lambda info_type, value: f"[{info_type}]"))
        elif "replace_config" in primitive:
            new_value = primitive.replace_config.new_value.string_value
            compiled.append((names, lambda info_type, value, new=new_value: new))
        elif "character_mask_config" in primitive:
            mask = primitive.character_mask_config
            compiled.append(
                (names, _masker(mask.masking_character or "*", mask.number_to_mask, mask.reverse_order))
            )
        else:
            context.abort(
                grpc.StatusCode.UNIMPLEMENTED, "the fake supports replace, replace-with-infoType, mask"
            )

    def transform(info_type: str, value: str) -> str:
        for names, apply in compiled:
            if not names or info_type in names:
                return apply(info_type, value)
        return value  # no transformation names this infoType: DLP leaves it as it is

    return transform


def _masker(char: str, number: int, reverse: bool) -> Callable[[str, str], str]:
    def mask(info_type: str, value: str) -> str:
        count = min(number if number > 0 else len(value), len(value))
        if reverse:
            return value[: len(value) - count] + char * count
        return char * count + value[count:]

    return mask
