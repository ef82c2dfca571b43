"""Rate limits on the API: a fixed-window counter per caller in Django's cache.

Who is counted: a token request by the token's id, a browser session by the user's id (anonymous
requests are refused before this runs). Every request counts against `API_RATE_LIMIT`
(ATALAYA_API_RATE_LIMIT, e.g. "6000/min"); writes (POST, PUT, PATCH, DELETE) also count against
`API_WRITE_RATE_LIMIT`. Over a limit, the API answers 429 in its error format (`rate_limited`, with the
limit, the window and when it ends) and a `Retry-After` header in whole seconds.

The counter is one cache key per caller and window (`ratelimit:<caller>:<seconds>:<window number>`),
incremented atomically: `cache.incr`, or `cache.add` when the window's first request creates it. On
Redis (CACHE_URL=redis://…) that is one counter shared by every process. On the embedded default
(locmem) each process counts on its own, so with several web processes a caller gets up to that many
times the limit: the embedded default is one process; production uses Redis.

Windows are fixed (aligned on multiples of their length since the epoch), so a caller may make up to
twice the limit across a window boundary; in exchange a check is one cache operation, which the hot
path can afford (prompt resolution checks it before anything else: apps.catalog.api_resolve).

Used as a DRF throttle (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"]) and, where a view answers before
DRF runs (the resolve fast path), through `api_rate_check`, which records its decision on the request
so that DRF's throttle, if the request goes on to DRF, does not count it twice.
"""

import math
import re
import time
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.throttling import BaseThrottle

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_UNITS |= {"d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")
_DECISION_ATTR = "_atalaya_rate_limit"


@dataclass(frozen=True, slots=True)
class Rate:
    limit: int
    seconds: int

    def describe(self) -> str:
        names = {1: "second", 60: "minute", 3600: "hour", 86400: "day"}
        return f"{self.limit} per {names.get(self.seconds, f'{self.seconds} seconds')}"


@lru_cache(maxsize=32)
def rate_parse(text: str) -> Rate | None:
    """'6000/min', '100/s', '20/15min', '1000/hour'; '' or 'off' (no limit). A malformed value is a
    configuration error, raised at the first request."""
    if text.strip().lower() in ("", "off", "none"):
        return None
    match = _RATE.match(text.lower())
    if match is None or match.group(3) not in _UNITS:
        raise ValueError(f"Rate {text!r}: write it as N/unit, e.g. 6000/min (units: s, min, hour, day).")
    count, multiple, unit = int(match.group(1)), int(match.group(2) or 1), match.group(3)
    return Rate(limit=count, seconds=multiple * _UNITS[unit])


def clock() -> float:
    """Seconds since the epoch (the tests move it)."""
    return time.time()


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    rate: Rate
    count: int
    retry_after: int  # whole seconds until the window ends (at least 1)
    kind: str  # "requests" or "writes"


def rate_limit_hit(*, key: str, rate: Rate, kind: str = "requests") -> Decision:
    """Count one request for `key` in the current window of `rate`; whether it is within the limit."""
    now = clock()
    window = int(now // rate.seconds)
    cache_key = f"ratelimit:{key}:{rate.seconds}:{window}"  # as in rate_limit_reset
    try:
        count = cache.incr(cache_key)
    except ValueError:  # the window's first request; if another one created the key in between, count on it
        count = 1 if cache.add(cache_key, 1, timeout=rate.seconds + 1) else cache.incr(cache_key)
    retry_after = max(1, math.ceil((window + 1) * rate.seconds - now))
    return Decision(count <= rate.limit, rate, count, retry_after, kind)


def rate_limit_reset(*, key: str, rate: Rate) -> None:
    """Start the count for `key` in the current window again."""
    cache.delete(f"ratelimit:{key}:{rate.seconds}:{int(clock() // rate.seconds)}")


def _caller(user, token) -> str | None:
    if token is not None:
        return f"token:{token.pk}"
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return None


def api_rate_check(request: HttpRequest, *, user, token, method: str) -> Decision | None:
    """The request's decision (counted once per request): the first limit it exceeds, or the last
    one checked; None when no limit applies (no limits set, or an anonymous caller)."""
    if hasattr(request, _DECISION_ATTR):
        return getattr(request, _DECISION_ATTR)
    decision = None
    caller = _caller(user, token)
    if caller is not None:
        limits = [(settings.API_RATE_LIMIT, "requests")]
        if method not in SAFE_METHODS:
            limits.append((settings.API_WRITE_RATE_LIMIT, "writes"))
        for text, kind in limits:
            rate = rate_parse(text)
            if rate is None:
                continue
            decision = rate_limit_hit(key=f"{kind}:{caller}", rate=rate, kind=kind)
            if not decision.allowed:
                break
    setattr(request, _DECISION_ATTR, decision)
    return decision


class RateLimited(exceptions.Throttled):
    default_code = "rate_limited"

    def __init__(self, decision: Decision, *, who: str):
        super().__init__(wait=decision.retry_after)
        self.retry_after = decision.retry_after
        what = "write requests" if decision.kind == "writes" else "requests"
        seconds = "second" if decision.retry_after == 1 else "seconds"
        self.detail = exceptions.ErrorDetail(
            f"Too many {what} for this {who}: the limit is {decision.rate.describe()}. "
            f"Try again in {decision.retry_after} {seconds}.",
            code=self.default_code,
        )
        self.details = {
            "limit": decision.rate.limit,
            "window_seconds": decision.rate.seconds,
            "retry_after": decision.retry_after,
            "applies_to": decision.kind,
        }


def rate_limited_error(decision: Decision, *, token) -> RateLimited:
    return RateLimited(decision, who="token" if token is not None else "user")


def rate_limited_response(exc: RateLimited) -> HttpResponse:
    """The 429 as the API's exception handler writes it, for a view answering before DRF runs."""
    body = {"error": {"code": exc.default_code, "message": str(exc.detail), "details": exc.details}}
    return HttpResponse(
        JSONRenderer().render(body),
        status=429,
        content_type="application/json",
        headers={"Retry-After": str(exc.retry_after)},
    )


class ApiRateThrottle(BaseThrottle):
    """DRF's side: every API view (REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"])."""

    def allow_request(self, request, view) -> bool:
        token = getattr(request.user, "active_token", None)
        decision = api_rate_check(request._request, user=request.user, token=token, method=request.method)
        if decision is not None and not decision.allowed:
            raise rate_limited_error(decision, token=token)
        return True
