"""Checksums and structural rules behind the local scanner's findings.

Every function takes the matched text (separators included unless said otherwise) and answers
whether it is a real identifier of that kind. They are pure and fast: the scanner calls them only on
the few candidates its compiled pattern found, never on whole texts.
"""

import base64
import binascii
import ipaddress
import json
import re

DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
CIF_CONTROL_LETTERS = "JABCDEFGHI"

# IBAN length per country (SWIFT IBAN registry).
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


_NON_DIGITS = re.compile(r"[^0-9]+")


def digits_of(text: str) -> str:
    return _NON_DIGITS.sub("", text)


def luhn_ok(number: str) -> bool:
    """Luhn (mod 10) over a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def card_brand(number: str) -> str | None:
    """The card network for a string of digits by its issuer prefix and length, or None."""
    n = len(number)
    p2, p3, p4, p6 = int(number[:2]), int(number[:3]), int(number[:4]), int(number[:6])
    if number[0] == "4" and n in (13, 16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or p2 == 65 or 644 <= p3 <= 649 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39) or p4 == 3095) and 14 <= n <= 19:
        return "diners"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 12 <= n <= 19:
        return "maestro"
    return None


def card_ok(text: str) -> bool:
    number = digits_of(text)
    return 12 <= len(number) <= 19 and card_brand(number) is not None and luhn_ok(number)


_IBAN_LETTERS = {ord(ch): str(10 + i) for i, ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")}


def iban_mod97_ok(compact: str) -> bool:
    """ISO 13616 check on an IBAN without separators, upper case."""
    rearranged = compact[4:] + compact[:4]
    return int(rearranged.translate(_IBAN_LETTERS)) % 97 == 1


def iban_length(compact: str) -> int | None:
    """The registered length for the IBAN's country, or None for an unknown country."""
    return IBAN_LENGTHS.get(compact[:2])


def dni_ok(text: str) -> bool:
    """Spanish DNI: 8 digits and the letter of their value mod 23."""
    number = digits_of(text)
    letter = text[-1].upper()
    return len(number) == 8 and DNI_LETTERS[int(number) % 23] == letter


def nie_ok(text: str) -> bool:
    """Spanish NIE: X, Y or Z (0, 1, 2), 7 digits and the DNI check letter of the 8-digit number."""
    first = text[0].upper()
    number = str("XYZ".index(first)) + digits_of(text)
    letter = text[-1].upper()
    return len(number) == 8 and DNI_LETTERS[int(number) % 23] == letter


def cif_ok(text: str) -> bool:
    """Spanish company NIF (formerly CIF): a letter, 7 digits and a control digit or letter."""
    compact = text.replace("-", "").upper()
    kind, body, control = compact[0], compact[1:8], compact[8]
    if not body.isdigit():
        return False
    even = sum(int(body[i]) for i in (1, 3, 5))
    odd = 0
    for i in (0, 2, 4, 6):
        doubled = int(body[i]) * 2
        odd += doubled // 10 + doubled % 10
    digit = (10 - (even + odd) % 10) % 10
    letter = CIF_CONTROL_LETTERS[digit]
    if kind in "PQRSNW":  # control is always a letter
        return control == letter
    if kind in "ABEH":  # control is always a digit
        return control == str(digit)
    return control in (str(digit), letter)


def ssn_ok(text: str) -> bool:
    """US SSN rules: area not 000, 666 or 900-999; group not 00; serial not 0000; no advertised samples."""
    number = digits_of(text)
    if len(number) != 9:
        return False
    area, group, serial = number[:3], number[3:5], number[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return number not in ("078051120", "219099999", "123456789")


def nanp_ok(number: str) -> bool:
    """A 10-digit North American number: area code and exchange start 2-9, area not N11."""
    if len(number) != 10 or number[0] in "01" or number[3] in "01":
        return False
    return number[1:3] != "11"


def spain_phone_ok(number: str) -> bool:
    """A 9-digit Spanish number: mobiles 6xx and 71x-74x, landlines and special rates 8xx and 9xx."""
    if len(number) != 9:
        return False
    first = number[0]
    if first in "689":
        return True
    return first == "7" and number[1] in "1234"


def ipv4_ok(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def ipv6_ok(text: str) -> bool:
    if not any(ch.isdigit() for ch in text):  # "dead::beef", "Ab::Cd": words, not addresses
        return False
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def jwt_ok(text: str) -> bool:
    """A JSON Web Token whose header decodes to a JSON object naming an algorithm."""
    header = text.split(".", 1)[0]
    try:
        decoded = json.loads(_b64url_decode(header))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def basic_auth_ok(token: str) -> bool:
    """`Authorization: Basic <base64(user:password)>`."""
    try:
        decoded = base64.b64decode(token, validate=True)
    except (ValueError, binascii.Error):
        return False
    return b":" in decoded


_DIGIT = re.compile(r"[0-9]")
_UPPER = re.compile(r"[A-Z]")
_LOWER = re.compile(r"[a-z]")


def high_entropy(value: str, min_len: int = 16) -> bool:
    """Looks machine-generated: long enough, with letters and digits or many capitals and many
    lower-case letters, and not a placeholder such as "your_api_key_here" or "xxxxxxxx1111"."""
    if len(value) < min_len or len(set(value)) < 8:
        return False
    if _DIGIT.search(value) and (_UPPER.search(value) or _LOWER.search(value)):
        return True
    return len(_UPPER.findall(value)) >= 5 and len(_LOWER.findall(value)) >= 5
