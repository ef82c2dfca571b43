"""Contract tests of PII_SCANNER=dlp: the real google-cloud-dlp client, built as production builds
it, against the in-repo gRPC fake of DlpService over TLS (tests/contract/dlp_fake.py)."""

import grpc
import pytest
from google.api_core import retry as api_retry
from google.auth.credentials import AnonymousCredentials

from apps.cloud.pii import get_scanner
from apps.cloud.pii.base import RedactionMode, RedactionPolicy, ScannerUnavailable, redact
from apps.cloud.pii.dlp import DLP_INFO_TYPES, REQUEST_LIMIT_BYTES, DlpScanner
from tests.contract.dlp_fake import MAX_FINDINGS_PER_REQUEST

GCP_KEY = "AIza" + "Sy0123456789abcdefghijABCDEFGHIJ_-x"  # 39 characters, the shape of a Google API key
TOKEN_KEY = b"team-secret"

BATCH = [
    "Hola, soy Ana: ana.garcia@example.es, DNI 12345678Z.",
    "",
    "Nothing sensitive in this one.",
    "Ünïcödé ✓ first — then bob@example.com and SSN 123-45-6789 from 10.1.2.3",
    "Call +34 612 345 678 and use key " + GCP_KEY,
]
PLANTED = {
    0: [("EMAIL_ADDRESS", "ana.garcia@example.es"), ("SPAIN_DNI_NUMBER", "12345678Z")],
    3: [
        ("EMAIL_ADDRESS", "bob@example.com"),
        ("US_SOCIAL_SECURITY_NUMBER", "123-45-6789"),
        ("IP_ADDRESS", "10.1.2.3"),
    ],
    4: [("PHONE_NUMBER", "+34 612 345 678"), ("AUTH_TOKEN", GCP_KEY)],
}


def spans(text, result):
    return [(f.info_type, text[f.start : f.end]) for f in result.findings]


def test_a_batch_is_one_inspect_and_one_deidentify_with_findings_at_the_right_offsets(dlp_scanner, dlp_fake):
    results = dlp_scanner.scan(BATCH, RedactionPolicy(mode=RedactionMode.REPLACE))

    assert len(results) == len(BATCH)
    for i, text in enumerate(BATCH):
        assert spans(text, results[i]) == PLANTED.get(i, [])
    # Offsets are code points (the text has multi-byte characters before its findings).
    assert results[3].findings[0].start == BATCH[3].index("bob@")
    assert results[0].redacted == "Hola, soy Ana: [EMAIL_ADDRESS], DNI [SPAIN_DNI_NUMBER]."
    assert results[1].redacted == ""
    assert results[2].redacted == BATCH[2]
    assert results[3].redacted == (
        "Ünïcödé ✓ first — then [EMAIL_ADDRESS] and SSN [US_SOCIAL_SECURITY_NUMBER] from [IP_ADDRESS]"
    )
    assert results[4].redacted == "Call [PHONE_NUMBER] and use key [AUTH_TOKEN]"
    assert {f.likelihood for f in results[0].findings} == {"VERY_LIKELY", "LIKELY"}
    assert results[4].counts() == {"PHONE_NUMBER": 1, "AUTH_TOKEN": 1}

    assert [c.method for c in dlp_fake.calls] == ["InspectContent", "DeidentifyContent"]
    inspect = dlp_fake.requests("InspectContent")[0]
    assert inspect.parent == "projects/atalaya-test/locations/global"
    assert len(inspect.item.table.rows) == 4  # the empty text is not sent
    assert inspect.inspect_config.min_likelihood.name == "POSSIBLE"
    names = {t.name for t in inspect.inspect_config.info_types}
    assert {"EMAIL_ADDRESS", "SPAIN_NIE_NUMBER", "IBAN_CODE", *DLP_INFO_TYPES["AUTH_TOKEN"]} <= names


def test_the_request_never_asks_for_quotes(dlp_scanner, dlp_fake):
    for mode in RedactionMode:
        dlp_scanner.scan(BATCH, RedactionPolicy(mode=mode, token_key=TOKEN_KEY))
    assert dlp_fake.calls
    for call in dlp_fake.calls:
        assert call.request.inspect_config.include_quote is False


@pytest.mark.parametrize(
    "policy",
    [
        RedactionPolicy(mode=RedactionMode.REPLACE),
        RedactionPolicy(mode=RedactionMode.MASK),
        RedactionPolicy(mode=RedactionMode.MASK, mask_char="#"),
        RedactionPolicy(mode=RedactionMode.TOKEN, token_key=TOKEN_KEY),
    ],
    ids=["replace", "mask", "mask-hash", "token"],
)
def test_each_redaction_mode_gives_what_the_local_redaction_gives(dlp_scanner, dlp_fake, policy):
    results = dlp_scanner.scan(BATCH, policy)

    for text, result in zip(BATCH, results, strict=True):
        assert result.redacted == redact(text, result.findings, policy)
    methods = [c.method for c in dlp_fake.calls]
    if policy.mode is RedactionMode.TOKEN:
        assert methods == ["InspectContent"]  # the keyed token is computed here, the key never sent
    else:
        assert methods == ["InspectContent", "DeidentifyContent"]


def test_mask_and_token_outputs(dlp_scanner):
    text = "mail ana@example.com, again ana@example.com, other bob@example.com"
    (masked,) = dlp_scanner.scan([text], RedactionPolicy(mode=RedactionMode.MASK, mask_char="#"))
    assert masked.redacted == "mail " + "#" * 15 + ", again " + "#" * 15 + ", other " + "#" * 15

    (token,) = dlp_scanner.scan([text], RedactionPolicy(mode=RedactionMode.TOKEN, token_key=TOKEN_KEY))
    tokens = token.redacted.replace(",", "").split()[1::2]
    assert tokens[0] == tokens[1] != tokens[2]  # the same value groups, a different one does not
    assert tokens[0].startswith("[EMAIL_ADDRESS:") and len(tokens[0]) == len("[EMAIL_ADDRESS:]") + 12
    (other_key,) = dlp_scanner.scan([text], RedactionPolicy(mode=RedactionMode.TOKEN, token_key=b"other"))
    assert other_key.redacted != token.redacted


def test_min_likelihood_possible_drops_unlikely_findings(dlp_scanner):
    (result,) = dlp_scanner.scan(["DNI 12345678Z valid, 12345678A wrong letter"], RedactionPolicy())
    assert spans("DNI 12345678Z valid, 12345678A wrong letter", result) == [("SPAIN_DNI_NUMBER", "12345678Z")]
    assert "12345678A" in result.redacted


def test_a_batch_over_the_request_limit_is_split_into_requests_under_it(dlp_scanner, dlp_fake):
    filler = "lorem ipsum dolor sit amet " * 4_000  # 108,000 bytes
    texts = [f"{filler}user{i}@example.com {filler}" for i in range(6)]  # about 1.3 MB in all

    results = dlp_scanner.scan(texts, RedactionPolicy())

    inspects = [c for c in dlp_fake.calls if c.method == "InspectContent"]
    assert len(inspects) == 3  # two 216 KB texts per request: as few requests as fit
    assert all(c.status == "OK" and c.size <= REQUEST_LIMIT_BYTES for c in dlp_fake.calls)
    assert sum(len(r.item.table.rows) for r in dlp_fake.requests("InspectContent")) == 6
    for i, (text, result) in enumerate(zip(texts, results, strict=True)):
        assert spans(text, result) == [("EMAIL_ADDRESS", f"user{i}@example.com")]
        assert result.redacted == f"{filler}[EMAIL_ADDRESS] {filler}"


def test_a_single_text_over_the_limit_is_chunked_and_findings_rebased(dlp_scanner, dlp_fake):
    lines = []
    for i in range(16_000):
        # Multi-byte characters make byte and code point offsets differ all along the text.
        who = f"persona{i}@example.org" if i % 10 == 0 else f"persona {i}"
        lines.append(f"línea {i:05d} — ñandú café: contacto {who} y más texto aquí")
    text = "\n".join(lines)
    assert len(text.encode()) > 2 * REQUEST_LIMIT_BYTES

    (result,) = dlp_scanner.scan([text], RedactionPolicy())

    inspects = [c for c in dlp_fake.calls if c.method == "InspectContent"]
    assert len(inspects) >= 3
    assert all(c.status == "OK" and c.size <= REQUEST_LIMIT_BYTES for c in dlp_fake.calls)
    chunks = [
        row.values[0].string_value for r in dlp_fake.requests("InspectContent") for row in r.item.table.rows
    ]
    assert "".join(chunks) == text
    assert all(chunk.endswith("\n") for chunk in chunks[:-1])  # cut at line ends
    found = spans(text, result)
    assert found == [("EMAIL_ADDRESS", f"persona{i}@example.org") for i in range(0, 16_000, 10)]
    assert result.redacted == redact(text, result.findings, RedactionPolicy())
    assert "@" not in result.redacted


def test_a_chunk_without_whitespace_is_cut_on_a_character_boundary(dlp_scanner):
    text = "ñ" * 400_000 + " ana@example.com"  # 800 KB with no whitespace to cut at
    (result,) = dlp_scanner.scan([text], RedactionPolicy())
    assert spans(text, result) == [("EMAIL_ADDRESS", "ana@example.com")]
    assert result.redacted == "ñ" * 400_000 + " [EMAIL_ADDRESS]"


def test_over_3000_findings_the_request_is_split_and_none_is_lost(dlp_scanner, dlp_fake):
    one_text = " ".join(f"u{i}@example.com" for i in range(7_000))  # one row, 7,000 findings
    many = [" ".join(f"r{j}u{i}@example.com" for i in range(700)) for j in range(8)]  # 5,600 in 8 rows

    results = dlp_scanner.scan([one_text, *many], RedactionPolicy())

    assert [len(r.findings) for r in results] == [7_000] + [700] * 8
    for text, result in zip([one_text, *many], results, strict=True):
        assert {text[f.start : f.end].endswith("@example.com") for f in result.findings} == {True}
        assert "@" not in result.redacted
    # The first request came back truncated and was split until each part had under 3,000 findings;
    # de-identification (which the fake, like the risk it models, caps at 3,000) ran on those parts,
    # so no e-mail address is left in any redacted text.
    inspects = [c for c in dlp_fake.calls if c.method == "InspectContent"]
    deidentifies = [c for c in dlp_fake.calls if c.method == "DeidentifyContent"]
    assert len(inspects) > len(deidentifies) > 1
    for call in deidentifies:
        cells = [row.values[0].string_value for row in call.request.item.table.rows]
        assert sum(cell.count("@") for cell in cells) < MAX_FINDINGS_PER_REQUEST


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.INTERNAL,
    ],
)
def test_an_unavailable_service_raises_scanner_unavailable_then_the_retry_succeeds(
    dlp_scanner, dlp_fake, code
):
    dlp_fake.fail_next(1, code)
    with pytest.raises(ScannerUnavailable, match=code.name):
        dlp_scanner.scan(BATCH, RedactionPolicy())
    assert [c.status for c in dlp_fake.calls] == [code.name]  # retry=None in tests: one attempt

    results = dlp_scanner.scan(BATCH, RedactionPolicy())  # the caller's later retry
    assert results[0].redacted == "Hola, soy Ana: [EMAIL_ADDRESS], DNI [SPAIN_DNI_NUMBER]."


def test_a_failure_while_deidentifying_fails_the_scan_with_no_partial_result(dlp_scanner, dlp_fake):
    dlp_fake.fail_next(1, method="DeidentifyContent")
    with pytest.raises(ScannerUnavailable, match="UNAVAILABLE"):
        dlp_scanner.scan(BATCH, RedactionPolicy())
    assert [(c.method, c.status) for c in dlp_fake.calls] == [
        ("InspectContent", "OK"),
        ("DeidentifyContent", "UNAVAILABLE"),
    ]
    assert (
        dlp_scanner.scan(BATCH, RedactionPolicy())[4].redacted
        == "Call [PHONE_NUMBER] and use key [AUTH_TOKEN]"
    )


def test_a_slow_service_hits_the_timeout(dlp_settings, dlp_fake):
    dlp_settings.DLP_TIMEOUT_SECONDS = 0.3
    scanner = DlpScanner.from_settings(credentials=AnonymousCredentials())
    dlp_fake.delay_seconds = 1.0
    with pytest.raises(ScannerUnavailable, match="DEADLINE_EXCEEDED"):
        scanner.scan(["ana@example.com"], RedactionPolicy())
    dlp_fake.delay_seconds = 0.0
    assert scanner.scan(["ana@example.com"], RedactionPolicy())[0].redacted == "[EMAIL_ADDRESS]"


def test_a_stopped_service_raises_scanner_unavailable(dlp_scanner, dlp_fake):
    dlp_fake.stop()
    with pytest.raises(ScannerUnavailable, match="UNAVAILABLE"):
        dlp_scanner.scan(["ana@example.com"], RedactionPolicy())


def test_the_production_retry_retries_unavailable_only(dlp_settings, dlp_fake):
    dlp_settings.DLP_RETRY = True  # the production default: a short retry on UNAVAILABLE
    scanner = DlpScanner.from_settings(credentials=AnonymousCredentials())
    assert isinstance(scanner.retry, api_retry.Retry)

    dlp_fake.fail_next(1)
    assert scanner.scan(["ana@example.com"], RedactionPolicy())[0].redacted == "[EMAIL_ADDRESS]"
    assert [c.status for c in dlp_fake.calls][:2] == ["UNAVAILABLE", "OK"]

    dlp_fake.calls.clear()
    dlp_fake.fail_next(1, grpc.StatusCode.RESOURCE_EXHAUSTED)
    with pytest.raises(ScannerUnavailable, match="RESOURCE_EXHAUSTED"):
        scanner.scan(["ana@example.com"], RedactionPolicy())
    assert len(dlp_fake.calls) == 1  # a quota error goes back to the caller's backoff


def test_get_scanner_builds_the_dlp_scanner_from_settings(dlp_settings, dlp_fake):
    get_scanner.cache_clear()
    try:
        scanner = get_scanner()
        assert isinstance(scanner, DlpScanner) and scanner.retry is None and scanner.timeout == 5.0
        assert scanner.scan(["bob@example.com"], RedactionPolicy())[0].redacted == "[EMAIL_ADDRESS]"
    finally:
        get_scanner.cache_clear()


def test_production_construction_uses_googles_endpoint_unless_told(settings):
    settings.GOOGLE_CLOUD_PROJECT = "atalaya-prod"
    settings.DLP_API_ENDPOINT = ""
    scanner = DlpScanner.from_settings(credentials=AnonymousCredentials())
    assert scanner.client.api_endpoint == "dlp.googleapis.com"
    assert scanner.parent == "projects/atalaya-prod/locations/global"
    assert isinstance(scanner.retry, api_retry.Retry)
    scanner.client.transport.close()
