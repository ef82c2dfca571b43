"""PII_SCANNER=local: the embedded scanner, compiled patterns with validators, Cloud DLP infoType names.

One compiled regular expression finds every candidate in a single left-to-right pass over a text;
each candidate is then confirmed by a validator (Luhn and the issuer ranges, IBAN mod 97 and the
country's length, the DNI/NIE check letter, the CIF control character, SSN area/group/serial rules,
`ipaddress`, a decoded JWT header, NANP and Spanish numbering plans) and, for the ambiguous shapes
only, by the few words just before it. What a validator refuses is consumed, not rescanned: a
16-digit number that fails Luhn is neither a card nor a phone number, a DNI-shaped number with the
wrong letter is nothing, and no phone pattern can fire inside an IBAN, a card or an IP address.

Findings, with DLP's likelihoods:
- VERY_LIKELY: a checksum or a decoded structure confirmed it: CREDIT_CARD_NUMBER, IBAN_CODE,
  SPAIN_DNI_NUMBER, SPAIN_NIE_NUMBER, SPAIN_NIF_NUMBER (company NIF, formerly CIF), a JWT, a
  complete private key block;
- LIKELY: a strict shape: EMAIL_ADDRESS, IP_ADDRESS (v4 and v6), US_SOCIAL_SECURITY_NUMBER, written
  phone numbers, provider keys (Google AIza…, AWS AKIA…, GitHub ghp_…/github_pat_…, GitLab, OpenAI and
  Anthropic sk-…, Slack xox?-…, Stripe sk_live_…, Google OAuth client secrets, Slack webhooks),
  `Bearer` and `Basic` credentials;
- POSSIBLE: a bare 9-digit Spanish number with no phone word before it; a high-entropy value assigned
  to a key word (`api_key = …`, `"client_secret": "…"`).
Secrets of every provider are reported as AUTH_TOKEN, the family name the DLP scanner also uses.

How one pass stays fast: the expression starts with the character class of every character a
candidate can be anchored on (digits, capitals, + ( @ : = _ -), so CPython's regex engine skips all
other characters in its C search loop without entering the pattern. Candidates whose first
characters are lower case are anchored further in: an e-mail address on its "@" (the local part is
found backwards), an IPv6 address on its first colon, a JWT on the "J" of "eyJ", `ghp_…` on its "_",
`sk-…` on its "-", `api_key=…` on its "=" or ":". The character before a candidate is checked by a
fixed-width look-behind placed after the anchor (a candidate never starts inside a word or a longer
number). At one anchor the first alternative that matches wins, so the strict shapes (secrets, IBAN,
IP, grouped card, SSN, DNI) come before the loose ones (phones, bare digit runs).

Why our own patterns rather than a library (`bench/scanner.py --samples 5000 --seed 7`: this
scanner and Presidio 2.2.366, regex recognizers and the NoOp NLP engine, on the same generated corpus
of 5,000 texts (4.5 MB), in the same run, single-threaded, on the shared 2-core development machine):

    infoType                    planted  local recall/precision  Presidio recall/precision
    EMAIL_ADDRESS                  7594   1.0000 / 1.0000         1.0000 / 1.0000
    PHONE_NUMBER                   9743   1.0000 / 1.0000         0.8883 / 0.6136
    CREDIT_CARD_NUMBER             1288   1.0000 / 1.0000         0.8121 / 0.8645
    IBAN_CODE                      3421   1.0000 / 1.0000         1.0000 / 1.0000
    IP_ADDRESS                     4322   1.0000 / 1.0000         1.0000 / 0.9186
    US_SOCIAL_SECURITY_NUMBER      1615   1.0000 / 1.0000         1.0000 / 0.4742
    SPAIN_DNI_NUMBER               2329   1.0000 / 1.0000         0.8686 / 0.9629
    SPAIN_NIE_NUMBER               1292   1.0000 / 1.0000         0.7941 / 1.0000
    SPAIN_NIF_NUMBER               1974   1.0000 / 1.0000         n/a (no recognizer)
    AUTH_TOKEN                     4129   1.0000 / 1.0000         n/a (no recognizer)
    throughput (CPU time)          local 9,253 texts/s, 8.3 MB/s; Presidio 126 texts/s, 0.11 MB/s: 73.6×

The corpus generator was written alongside this scanner, so its perfect scores say that every format
the generator plants is covered, not that real traffic has none the scanner misses; the ratio and
Presidio's misses are the part that carries over.

Presidio runs every recognizer's patterns and python-phonenumbers (once per region) over each text;
it has no recognizer for company NIFs or secrets, and its weak SSN and phone patterns fire on order
numbers and other digit runs. The one other maintained option, Cloud DLP, is the production path
(PII_SCANNER=dlp), not an embedded default.

Limits, on purpose: ASCII e-mail addresses; phone numbers that are Spanish, North American, or
international with + or 00; a bare 9-digit number counts as a Spanish phone only when no order,
invoice or reference word stands just before it, and a bare 10-digit one only after a phone word.
"""

import re
from collections.abc import Iterable, Sequence

from apps.cloud.pii import validators as v
from apps.cloud.pii.base import INFO_TYPES, Finding, RedactionPolicy, ScanResult, redact

VERY_LIKELY, LIKELY, POSSIBLE = "VERY_LIKELY", "LIKELY", "POSSIBLE"

Hit = tuple[str, int, int, str]  # info_type, start, end, likelihood

# --- the pattern ----------------------------------------------------------------------------------
# Alternatives grouped by their anchor character. Each is (name, regex written *after* the anchor,
# which the regex has already consumed). A name ending in a digit is a secret anchored that many
# characters into the token ("key3": `ghp_` is anchored on its "_", three characters in).

_END_NUM = r"(?![\w@]|[.,/-]\d|[ ]\d)"  # a number ends here: no word, no further digit group

_ANCHORS: dict[str, list[tuple[str, str]]] = {
    "0-9": [
        ("ipv4", r"(?<![\w.-]\d)\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\w@]|\.\d)"),
        (
            "card",
            r"(?<![\w+.,/-]\d)\d{3}(?P<card_sep>[ -])\d{4}(?P=card_sep)\d{4}(?P=card_sep)\d{1,4}" + _END_NUM,
        ),
        ("card", r"(?<=3)(?<![\w+.,/-]3)\d{3}(?P<amex_sep>[ -])\d{6}(?P=amex_sep)\d{4,5}" + _END_NUM),
        ("ssn", r"(?<![\w+.,/-]\d)\d{2}(?P<ssn_sep>[- ])\d{2}(?P=ssn_sep)\d{4}" + _END_NUM),
        ("dni", r"(?<![\w.,/-]\d)(?:\d{7}|\d\.\d{3}\.\d{3})(?:-?[A-Za-z]|[ ][A-Z])(?![\w@])"),
        ("phone_intl", r"(?<=0)(?<![\w+.,/-]0)0(?=[1-9])(?:[ .-]?(?:\d++|\(0?\d{1,4}\))){1,8}"),
        (
            "phone_nanp",
            r"(?<![\w+.,/-]\d)(?:(?<=1)[ .-]?(?:\(\d{3}\)[ .-]?|\d{3}[ .-])|\d{2}[ .-])\d{3}[ .-]\d{4}"
            + _END_NUM,
        ),
        (
            "phone_es",
            r"(?<=[6-9])(?<![\w+.,/-][6-9])(?:\d{2}(?P<es_sep>[ .-])\d{3}(?P=es_sep)\d{3}"
            r"|\d{2}(?P<es_sep2>[ .-])\d{2}(?P=es_sep2)\d{2}(?P=es_sep2)\d{2}"
            r"|(?<=[89])\d(?P<es_sep3>[ .-])\d{3}(?P=es_sep3)\d{2}(?P=es_sep3)\d{2})" + _END_NUM,
        ),
        ("digits", r"(?<![\w+.,/-]\d)\d{8,18}(?![\w@]|[.,/-]\d)"),
    ],
    "A-Z": [
        ("jwt2", r"(?<=eyJ)(?<![\w-]eyJ)[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
        (
            "key0",
            r"(?<![\w-][AG])(?:(?<=A)(?:Iza[0-9A-Za-z_-]{35}"  # Google API key
            r"|(?:KIA|SIA|BIA|CCA|IDA|ROA|IPA|NPA|NVA|GPA)[0-9A-Z]{16})"  # AWS access key id
            r"|(?<=G)OCSPX-[A-Za-z0-9_-]{28})(?![\w-])",  # Google OAuth client secret
        ),
        ("bearer", r"(?<=B)(?<![\w-]B)(?:earer|EARER)[ \t]+(?P<bearer_value>[A-Za-z0-9._~+/-]{16,4096}=*)"),
        ("basic", r"(?<=B)(?<![\w-]B)asic[ \t]+(?P<basic_value>[A-Za-z0-9+/]{8,1024}={0,2})(?![\w+/=])"),
        ("iban", r"(?<![\w-][A-Z])[A-Z]\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,3})?(?![\w@])"),
        ("nie", r"(?<![\w.-][XYZ])(?<=[XYZ])[ -]?\d{7}[ -]?[A-Za-z](?![\w@])"),
        ("cif", r"(?<![\w.-][A-Z])(?<=[ABCDEFGHJNPQRSUVW])-?\d{7}-?[0-9A-J](?![\w@])"),
    ],
    "+": [("phone_intl", r"(?<![\w+]\+)(?:[ .-]?(?:\d++|\(0?\d{1,4}\))){1,8}")],
    "(": [
        ("phone_intl", r"(?<!\w\()\+\d{1,3}\)(?:[ .-]?(?:\d++|\(0?\d{1,4}\))){1,8}"),
        ("phone_nanp", r"(?<!\w\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}" + _END_NUM),
    ],
    "@": [("email", r"(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![\w-])")],
    ":=": [
        ("key5", r"(?<=https:)//hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+"),
        # a lookahead: when no key word stands before the "=", the value is still scanned for keys
        ("assigned", r"""(?=[ \t]*["']?(?P<assigned_value>[A-Za-z0-9_\-./+=]{16,512}))"""),
        ("ipv6", r"(?<=:)(?=[0-9A-Fa-f]{0,4}:)[0-9A-Fa-f:]{0,45}(?:\.\d{1,3}){0,3}"),
    ],
    "_": [
        ("key3", r"(?<=gh[pousr]_)(?<![\w-]gh[pousr]_)[A-Za-z0-9]{36,255}(?![\w-])"),  # GitHub
        ("key6", r"(?<=github_)(?<![\w-]github_)pat_[A-Za-z0-9_]{40,255}(?![\w-])"),
        ("key2", r"(?<=[sr]k_)(?<![\w-][sr]k_)(?:live|test)_[A-Za-z0-9]{16,255}(?![\w-])"),  # Stripe
        ("key5", r"(?<=whsec_)(?<![\w-]whsec_)[A-Za-z0-9]{24,255}(?![\w-])"),
    ],
    "-": [
        (
            "private_key",
            r"(?<!--)----BEGIN[ ](?:[A-Z0-9]+[ ]){0,3}PRIVATE[ ]KEY(?:[ ]BLOCK)?-----"
            r"(?:[\s\S]{1,20000}?-----END[ ](?:[A-Z0-9]+[ ]){0,3}PRIVATE[ ]KEY(?:[ ]BLOCK)?-----"
            r"|(?:\\[nr]|[A-Za-z0-9+/=\r\n])*+)",
        ),
        # OpenAI and Anthropic
        (
            "key2",
            r"(?<=sk-)(?<![\w-]sk-)(?:proj-|svcacct-|admin-|ant-(?:api|admin)\d\d-)?[A-Za-z0-9_-]{20,255}",
        ),
        ("key4", r"(?<=xox[abposre]-)(?<![\w-]xox[abposre]-)[A-Za-z0-9-]{10,255}"),  # Slack
        ("key5", r"(?<=glpat-)(?<![\w-]glpat-)[A-Za-z0-9_-]{20,255}"),  # GitLab
    ],
}


def _compile() -> re.Pattern[str]:
    seen: dict[str, int] = {}
    anchors, branches = [], []
    for anchor, alternatives in _ANCHORS.items():
        anchors.append(re.escape(anchor) if len(anchor) == 1 else anchor)
        inner = []
        for name, regex in alternatives:
            seen[name] = seen.get(name, 0) + 1
            inner.append(f"{regex}(?P<{name}__{seen[name]}>)")  # the empty group names the alternative
        lookbehind = re.escape(anchor) if len(anchor) == 1 else f"[{anchor}]"
        branches.append(f"(?<={lookbehind})(?:{'|'.join(inner)})")
    return re.compile(f"[{''.join(anchors)}](?:{'|'.join(branches)})")


_PATTERN = _compile()

# Whole provider keys, to tell a known key from any high-entropy value after `api_key=`.
_KEY_ONLY = re.compile(
    r"AIza[0-9A-Za-z_-]{35}|A(?:KIA|SIA|BIA|CCA|IDA|ROA|IPA|NPA|NVA|GPA)[0-9A-Z]{16}|GOCSPX-[A-Za-z0-9_-]{28}"
    r"|gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{40,255}|glpat-[A-Za-z0-9_-]{20,255}"
    r"|sk-[A-Za-z0-9_-]{20,255}|xox[abposre]-[A-Za-z0-9-]{10,255}|[sr]k_(?:live|test)_[A-Za-z0-9]{16,255}"
    r"|whsec_[A-Za-z0-9]{24,255}|eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"
)
_KEY_WORD_BEFORE = re.compile(
    r"(?:api[_-]?key|apikey|secret(?:[_-]?access)?(?:[_-]?key)?|token|private[_-]?key)[\"']?[ \t]*\Z"
)
_LOCAL_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._%+-]*\Z")
_EMAIL_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
_IPV6 = re.compile(
    r"(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{0,4}){2,7}|::(?:[0-9A-Fa-f]{1,4}(?::[0-9A-Fa-f]{1,4}){0,6})?)"
    r"(?:\.\d{1,3}){0,3}(?![\w:])"
)
_HEXCHARS = frozenset("0123456789abcdefABCDEF")

# --- the words before an ambiguous number ---------------------------------------------------------
# A bare or loosely written number is judged by the nearest labelling word before it: a phone word,
# an SSN word, a card word, or a word that makes it something else (an order, an invoice, a
# reference, an account…). Whole words only ("Daniel" does not contain "nie", "weaver.info" does not
# contain "ver.").
_LABELS = re.compile(
    r"(?:\b(?:"
    r"(?P<ssn>ssns?|social security|seguro social|security number)"
    r"|(?P<phone>tel[eé]fonos?|tel|tlf|tfno|m[oó]vil(?:es)?|ll[aá]m\w*|whatsapp|sms|fijo|phones?|call\w*"
    r"|mobile|cell\w*|fax|contact\w*|dial|text|ring)"
    r"|(?P<card>cards?|tarjetas?|visa|master\w*|amex|cc|pan|credit|cr[eé]dito|d[eé]bito|charged?|cobr\w*)"
    r"|(?P<other>pedidos?|orders?|facturas?|invoices?|albar[aá]n|ref|referencia|reference|id|ids|ticket"
    r"|expediente|tracking|seguimiento|env[ií]o|shipment|c[oó]digo|code|sku|lote|lot|serie|serial|cuenta"
    r"|account|acct|routing|aba|transacci[oó]n|transaction|isbn|importe|amount|total|saldo"
    r"|balance|dni|nif|nie|contrato|contract|p[oó]liza|policy|matr[ií]cula|folio|caso|case|incidencia"
    r"|incident|batch|slip|packing|build|versi[oó]n|version|release|zip|postal|iban|swift|bic|localizador"
    r"|(?:n[uú]mero|c[oó]digo) de (?:cliente|socio)|customer (?:number|no|id)|member (?:number|no|id))"
    r")\b|(?P<sign>#|n[º°]|n\.º))"
)  # matched against the lower-cased window: faster than IGNORECASE
_CLAUSE_BREAK = re.compile(r"[,;\n·|]")
_VERSION_BEFORE = re.compile(r"\b(?:versi[oó]n|version|ver\.|release|build)[\s:=]*\Z", re.IGNORECASE)
_CURRENCY_AFTER = re.compile(r"[ ]?(?:€|eur\b|euros?\b|\$|usd\b|d[oó]lar|dollar|gbp\b|£|,\d)", re.IGNORECASE)


def _label_before(text: str, start: int, width: int) -> tuple[str | None, int]:
    """The category of the nearest labelling word within width characters before start, and how far
    before start it ends; (None, width) when there is none."""
    window = text[max(0, start - width) : start].lower()
    label, distance = None, width
    for m in _LABELS.finditer(window):
        label, distance = m.lastgroup, len(window) - m.end()
    if label == "sign":
        label = "other"
    if label == "other" and _CLAUSE_BREAK.search(text, start - distance, start):
        return None, width  # "DNI 12345678Z, 612345678": the label named something before
    return label, distance


def _is_amount(text: str, start: int, end: int) -> bool:
    return bool(_CURRENCY_AFTER.match(text, end)) or (start > 0 and text[start - 1] in "$€£")


def _formatted_phone_ok(text: str, start: int, end: int) -> bool:
    """A number written like a phone number (grouped, or in parentheses): one unless it is an amount
    or a label such as "pedido nº" or "order #" stands right before it."""
    if _is_amount(text, start, end):
        return False
    label, distance = _label_before(text, start, 28)
    return not (label == "other" and distance <= 12)


# National significant number lengths for the country codes seen most; others take 9 to 15 digits
# in all.
_NATIONAL_LENGTHS: dict[str, Sequence[int]] = {
    "1": (10,), "7": (10,), "20": (9, 10), "27": (9,), "30": (10,), "31": (9,), "32": (8, 9), "33": (9,),
    "34": (9,), "36": (8, 9), "39": (9, 10, 11), "40": (9,), "41": (9,), "43": range(4, 14), "44": (9, 10),
    "45": (8,), "46": (7, 8, 9), "47": (8,), "48": (9,), "49": range(6, 14), "51": (8, 9), "52": (10,),
    "53": (8,), "54": (10, 11), "55": (10, 11), "56": (9,), "57": (10,), "58": (10,), "60": (8, 9, 10),
    "61": (9,), "62": range(8, 13), "63": (10,), "64": (8, 9, 10), "65": (8,), "66": (8, 9), "81": (9, 10),
    "82": (8, 9, 10), "84": (9, 10), "86": (10, 11), "90": (10,), "91": (10,), "212": (9,), "351": (9,),
    "352": range(6, 12), "353": (7, 8, 9), "354": (7,), "358": range(5, 13), "372": (7, 8), "376": (6,),
    "420": (9,), "421": (9,), "502": (8,), "503": (8,), "506": (8,), "507": (7, 8), "591": (8,),
    "593": (8, 9), "595": (9,), "598": (8,), "852": (8,), "886": (9,), "966": (9,), "971": (8, 9),
    "972": (8, 9),
}  # fmt: skip


def _intl_digits_ok(digits: str) -> bool:
    """The digits after + or 00: a country code and a national number of a length that country uses."""
    if not digits or digits[0] == "0":
        return False
    for cc_len in (1, 2, 3):
        cc = digits[:cc_len]
        lengths = _NATIONAL_LENGTHS.get(cc)
        if lengths is not None:
            national = digits[cc_len:]
            if len(national) not in lengths:
                return False
            if cc == "1":
                return v.nanp_ok(national)
            if cc == "34":
                return v.spain_phone_ok(national)
            return national[0] != "0" or cc == "39"  # Italian landlines keep their 0
    return 9 <= len(digits) <= 15


_DIGIT_PIECES = re.compile(r"\(0\)|\d+")


def _intl_phone_end(text: str, start: int, end: int) -> int | None:
    """`+34 612 345 678`, `0034…`, `(+1) 415…`, `+44 (0)20…`: where the longest run of digit groups
    that is a valid number for its country code ends, or None."""
    digits, best = "", None
    for piece in _DIGIT_PIECES.finditer(text, start, end):
        if piece.group() == "(0)":  # the national trunk prefix written beside the country code
            continue
        digits += piece.group()
        if _intl_digits_ok(digits[2:] if digits.startswith("00") else digits):
            best = piece.end()
    return best


# --- the scanner ----------------------------------------------------------------------------------


class LocalScanner:
    """Compiled patterns with validators; one pass per text. See the module docstring."""

    name = "local"

    def __init__(self, info_types: Iterable[str] = INFO_TYPES):
        self.info_types = frozenset(info_types)
        unknown = self.info_types - set(INFO_TYPES)
        if unknown:
            raise ValueError(f"unknown infoTypes: {', '.join(sorted(unknown))}")

    @classmethod
    def from_settings(cls) -> "LocalScanner":
        return cls()

    def scan(self, texts: Sequence[str], policy: RedactionPolicy) -> list[ScanResult]:
        results = []
        for text in texts:
            findings = self.find(text)
            results.append(ScanResult(redact(text, findings, policy) if findings else text, tuple(findings)))
        return results

    def find(self, text: str) -> list[Finding]:
        """The findings in one text, in order of position, never overlapping."""
        hits: list[Hit] = []
        overlap = False
        last_end = 0
        for match in _PATTERN.finditer(text):
            hit = _CONFIRM[match.lastgroup](text, match)  # type: ignore[index]
            if hit is not None:
                if hit[1] < last_end:  # anchored inside the token: starts before the previous end
                    overlap = True
                last_end = max(last_end, hit[2])
                hits.append(hit)
        if overlap:
            hits = _non_overlapping(hits)
        wanted = self.info_types
        return [Finding(*hit) for hit in hits if hit[0] in wanted]


def _non_overlapping(hits: list[Hit]) -> list[Hit]:
    """Where two candidates overlap the longer wins (an e-mail address over the phone number that is
    its local part, an IPv6 address over the IPv4 address at its end)."""
    kept: list[Hit] = []
    for hit in sorted(hits, key=lambda h: h[1] - h[2]):
        if all(hit[2] <= k[1] or hit[1] >= k[2] for k in kept):
            kept.append(hit)
    kept.sort(key=lambda h: h[1])
    return kept


# --- confirmation: one function per alternative, (info_type, start, end, likelihood) or None -----

Confirmed = Hit | None


def _private_key(text: str, m: re.Match[str]) -> Confirmed:
    complete = "-----END" in m.group()
    return "AUTH_TOKEN", m.start(), m.end(), VERY_LIKELY if complete else LIKELY


def _jwt(text: str, m: re.Match[str]) -> Confirmed:
    start = m.start() - 2
    if v.jwt_ok(text[start : m.end()]):
        return "AUTH_TOKEN", start, m.end(), VERY_LIKELY
    return None


def _key_at(offset: int):
    def confirm(text: str, m: re.Match[str]) -> Confirmed:
        start = m.start() - offset
        if text.startswith("sk-", start) and not v.high_entropy(text[start + 3 : m.end()], 20):
            return None  # "sk-learn-…"-style kebab-case words
        return "AUTH_TOKEN", start, m.end(), LIKELY

    return confirm


def _bearer(text: str, m: re.Match[str]) -> Confirmed:
    if not v.high_entropy(m.group("bearer_value")):
        return None
    return "AUTH_TOKEN", m.start("bearer_value"), m.end(), LIKELY


def _basic(text: str, m: re.Match[str]) -> Confirmed:
    if not v.basic_auth_ok(m.group("basic_value")):
        return None
    return "AUTH_TOKEN", m.start("basic_value"), m.end(), LIKELY


def _assigned(text: str, m: re.Match[str]) -> Confirmed:
    anchor = m.start()
    if not _KEY_WORD_BEFORE.search(text[max(0, anchor - 40) : anchor].lower()):
        return None
    value = m.group("assigned_value").rstrip(".")
    if not v.high_entropy(value):
        return None
    start = m.start("assigned_value")
    likelihood = LIKELY if _KEY_ONLY.fullmatch(value) else POSSIBLE
    return "AUTH_TOKEN", start, start + len(value), likelihood


# Top-level domains an address can end with: every two-letter country code, and the generic ones
# seen in mail. File names such as "logo@2x.png" end with something else.
_GENERIC_TLD_WORDS = (
    "com org net edu gov mil int info biz name pro aero coop museum jobs mobi travel tel asia cat eus gal "
    "app dev cloud tech online site store shop xyz email company agency digital global group solutions "
    "services systems network media news blog design studio world life live today team work club "
    "academy health bank insurance legal law consulting partners ventures capital finance financial "
    "barcelona madrid berlin london paris nyc tokyo amsterdam vegas"
)
_GENERIC_TLDS = frozenset(_GENERIC_TLD_WORDS.split())


def _email(text: str, m: re.Match[str]) -> Confirmed:
    at = m.start()
    floor = max(0, at - 64)
    local = _LOCAL_PART.search(text, floor, at)
    if local is None:
        return None
    start = local.start()
    if start == floor and start and text[start - 1] in _EMAIL_LOCAL_CHARS:
        return None  # a local part longer than 64 characters
    local_part, domain = text[start:at], m.group()[1:]
    if local_part.endswith(".") or ".." in local_part:
        return None
    tld = domain.rsplit(".", 1)[-1].lower()
    if not (len(tld) == 2 or tld in _GENERIC_TLDS):
        return None
    if any(label.startswith("-") or label.endswith("-") for label in domain.split(".")):
        return None
    return "EMAIL_ADDRESS", start, m.end(), LIKELY


def _ipv6(text: str, m: re.Match[str]) -> Confirmed:
    colon = m.start()
    start = colon
    while start > 0 and colon - start < 4 and text[start - 1] in _HEXCHARS:
        start -= 1
    if start and (text[start - 1].isalnum() or text[start - 1] in "_:."):
        start = colon + 1  # "host:2001:db8::1": the colon separates a label from the address
        if colon and text[colon - 1] == ":":
            return None
    candidate = _IPV6.match(text, start)
    if candidate is None or not v.ipv6_ok(candidate.group()):
        return None
    return "IP_ADDRESS", start, candidate.end(), LIKELY


def _iban(text: str, m: re.Match[str]) -> Confirmed:
    value = m.group()
    length = v.iban_length(value[:2])
    if length is None:
        return None
    # Cut at the country's length: a trailing group may be a word that follows the IBAN.
    compact = value.replace(" ", "").replace("-", "")
    if len(compact) < length:
        return None
    end = m.start()
    if len(compact) > length:
        seen = 0
        for i, ch in enumerate(value):
            if ch != " " and ch != "-":
                seen += 1
                if seen == length:
                    end += i + 1
                    break
        if text[end].isalnum():
            return None  # the country's length ends inside a group
        compact = compact[:length]
    else:
        end = m.end()
    if not v.iban_mod97_ok(compact):
        return None
    return "IBAN_CODE", m.start(), end, VERY_LIKELY


def _nie(text: str, m: re.Match[str]) -> Confirmed:
    value = m.group()
    if value[-2] == " " and value[-1].islower():
        return None
    if v.nie_ok(value):
        return "SPAIN_NIE_NUMBER", m.start(), m.end(), VERY_LIKELY
    return None


def _cif(text: str, m: re.Match[str]) -> Confirmed:
    if v.cif_ok(m.group()):
        return "SPAIN_NIF_NUMBER", m.start(), m.end(), VERY_LIKELY
    return None


def _ipv4(text: str, m: re.Match[str]) -> Confirmed:
    start = m.start()
    if not v.ipv4_ok(m.group()):
        return None
    if start >= 2 and text[start - 1] == "/" and text[start - 2].isalnum():
        return None  # "Chrome/120.0.0.0": a product version
    if _VERSION_BEFORE.search(text, max(0, start - 12), start):
        return None
    return "IP_ADDRESS", start, m.end(), LIKELY


def _card(text: str, m: re.Match[str]) -> Confirmed:
    if v.card_ok(m.group()):
        return "CREDIT_CARD_NUMBER", m.start(), m.end(), VERY_LIKELY
    return None


def _ssn(text: str, m: re.Match[str]) -> Confirmed:
    if not v.ssn_ok(m.group()):
        return None
    spaced = m.group("ssn_sep") == " "
    if (
        spaced
        and _label_before(text, m.start(), 64)[0] != "ssn"
        and not _formatted_phone_ok(text, m.start(), m.end())
    ):
        return None  # "912 34 5678 €": spaced digits are an SSN unless they are an amount or a reference
    return "US_SOCIAL_SECURITY_NUMBER", m.start(), m.end(), LIKELY


def _dni(text: str, m: re.Match[str]) -> Confirmed:
    if v.dni_ok(m.group()):
        return "SPAIN_DNI_NUMBER", m.start(), m.end(), VERY_LIKELY
    return None


def _phone_intl(text: str, m: re.Match[str]) -> Confirmed:
    end = _intl_phone_end(text, m.start(), m.end())
    if (
        end is not None
        and text.startswith("00", m.start())
        and _label_before(text, m.start(), 40)[0] == "other"
    ):
        end = None  # "account number 0087…", "tracking 0082 3389 8205": a reference, not 00 + a country
    if end is None:
        value = m.group()
        if value.isdigit() and 9 <= len(value) <= 19:  # "006302319": a bare number that starts with 00
            return _bare_number(text, m.start(), m.end())
        return None
    return "PHONE_NUMBER", m.start(), end, LIKELY


def _phone_nanp(text: str, m: re.Match[str]) -> Confirmed:
    number = v.digits_of(m.group())
    if not v.nanp_ok(number[-10:]) or (len(number) == 11 and number[0] != "1"):
        return None
    if not _formatted_phone_ok(text, m.start(), m.end()):
        return None
    return "PHONE_NUMBER", m.start(), m.end(), LIKELY


def _phone_es(text: str, m: re.Match[str]) -> Confirmed:
    if not v.spain_phone_ok(v.digits_of(m.group())):
        return None
    if not _formatted_phone_ok(text, m.start(), m.end()):
        return None
    return "PHONE_NUMBER", m.start(), m.end(), LIKELY


def _digits(text: str, m: re.Match[str]) -> Confirmed:
    return _bare_number(text, m.start(), m.end())


def _bare_number(text: str, start: int, end: int) -> Confirmed:
    """A run of 9 to 19 digits: a card (Luhn and issuer), an SSN (after an SSN word), a Spanish phone
    number (not after an order or reference word), or a North American one (after a phone word)."""
    number = text[start:end]
    n = len(number)
    label, distance = _label_before(text, start, 64)
    if label == "other" and distance > 40:
        label = None
    if n >= 12:
        if not v.card_ok(number) or label == "other":
            return None
        return "CREDIT_CARD_NUMBER", start, end, VERY_LIKELY
    if n == 9 and label == "ssn":
        return ("US_SOCIAL_SECURITY_NUMBER", start, end, LIKELY) if v.ssn_ok(number) else None
    if label == "other" or _is_amount(text, start, end):
        return None
    if n == 9 and v.spain_phone_ok(number):
        return "PHONE_NUMBER", start, end, LIKELY if label == "phone" else POSSIBLE
    if (n == 10 or (n == 11 and number[0] == "1")) and v.nanp_ok(number[-10:]) and label == "phone":
        return "PHONE_NUMBER", start, end, LIKELY  # a bare 10-digit number needs a phone word
    return None


_CONFIRMERS = {
    "private_key": _private_key,
    "jwt2": _jwt,
    "key0": _key_at(0),
    "key2": _key_at(2),
    "key3": _key_at(3),
    "key4": _key_at(4),
    "key5": _key_at(5),
    "key6": _key_at(6),
    "bearer": _bearer,
    "basic": _basic,
    "assigned": _assigned,
    "email": _email,
    "ipv6": _ipv6,
    "iban": _iban,
    "nie": _nie,
    "cif": _cif,
    "ipv4": _ipv4,
    "card": _card,
    "ssn": _ssn,
    "dni": _dni,
    "phone_intl": _phone_intl,
    "phone_nanp": _phone_nanp,
    "phone_es": _phone_es,
    "digits": _digits,
}
# "phone_intl__2" → the confirmer of phone_intl
_CONFIRM = {name: _CONFIRMERS[name.partition("__")[0]] for name in _PATTERN.groupindex if "__" in name}
