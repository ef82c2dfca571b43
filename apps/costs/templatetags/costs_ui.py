"""Number formats of the costs pages, localised (English and Spanish separators)."""

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.formats import date_format, number_format

register = template.Library()


def _number(value: Any, places: int) -> str:
    return number_format(value, decimal_pos=places, use_l10n=True, force_grouping=True)


@register.filter
def money(value: Any) -> str:
    """An amount in the console's currency: cents from 1 up, four decimals below (LLM calls are cheap)."""
    if value is None or value == "":
        return "—"
    return f"{amount(value)} {settings.COSTS_CURRENCY}"


@register.filter
def amount(value: Any) -> str:
    """An amount without the currency."""
    if value is None or value == "":
        return "—"
    number = Decimal(str(value))
    whole_cents = number == number.quantize(Decimal("0.01"))
    return _number(number, 2 if whole_cents or abs(number) >= 1 else 4)


@register.filter
def count(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return _number(int(value), 0)


@register.filter
def rate(value: Any) -> str:
    """A ratio (0.034) as a percentage (3.4 %)."""
    if value is None or value == "":
        return "—"
    return f"{_number(float(value) * 100, 1)} %"


@register.filter
def percent(value: Any) -> str:
    """A percentage already in percent (34.5)."""
    if value is None or value == "":
        return "—"
    return f"{_number(float(value), 0)} %"


@register.filter
def ms(value: Any) -> str:
    if value is None or value == "":
        return "—"
    return f"{_number(float(value), 0)} ms"


@register.filter
def cell(value: Any, kind: str) -> str:
    """A data-table cell by its column kind."""
    formats = {"money": money, "amount": amount, "int": count, "rate": rate, "ms": ms, "pct": percent}
    if kind == "date" and value:
        return date_format(date.fromisoformat(str(value)), "SHORT_DATE_FORMAT")
    if kind in formats:
        return formats[kind](value)
    return "—" if value is None or value == "" else str(value)


@register.filter
def raw(value: Any) -> str:
    """The exact value, for <data value="…"> (tests and scripts read it; people read the text)."""
    if value is None:
        return ""
    return str(value)


@register.filter
def bar_width(value: Any) -> str:
    """A percentage clamped to 0–100 and rounded, for a width class (`w-0` … `w-100` in atalaya.css:
    the content security policy refuses style="" attributes)."""
    if value is None:
        return "0"
    return str(round(max(0.0, min(100.0, float(value)))))


@register.filter
def normalize(value: Any) -> str:
    """A stored price without its trailing zeros (0.00030000 → 0.0003), localised."""
    if value is None:
        return "—"
    number = Decimal(str(value)).normalize()
    places = max(0, -number.as_tuple().exponent) if isinstance(number.as_tuple().exponent, int) else 0
    return _number(number, max(2, places))


@register.filter
def last_day(end: Any) -> Any:
    """The last day of a period given its exclusive end (1 Dec 00:00 → 30 Nov)."""
    if end is None:
        return None
    return (timezone.localtime(end) - timedelta(microseconds=1)).date()
