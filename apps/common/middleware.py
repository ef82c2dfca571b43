"""Carries who and where a request came from, so audit events can say "from which request"."""

import contextvars
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    ip: str = ""
    user_agent: str = ""
    path: str = ""
    method: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {
            "request_id": self.request_id,
            "ip": self.ip,
            "user_agent": self.user_agent[:200],
            "method": self.method,
            "path": self.path,
        }
        data.update(self.extra)
        return {k: v for k, v in data.items() if v}


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar(
    "atalaya_request", default=None
)


def current_request_context() -> RequestContext | None:
    return _current.get()


def set_request_context(context: RequestContext | None) -> contextvars.Token:
    return _current.set(context)


def reset_request_context(token: contextvars.Token) -> None:
    _current.reset(token)


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies that each append the
    address they saw to X-Forwarded-For, the entry the outermost one wrote (entries further left are
    whatever the client sent, and are ignored)."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            return forwarded[-proxies][:64]
    return request.META.get("REMOTE_ADDR", "")


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-Id", "")
        request_id = incoming[:64] if incoming and incoming.isprintable() else uuid.uuid4().hex
        context = RequestContext(
            request_id=request_id,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", ""),
            path=request.path[:300],
            method=request.method or "",
        )
        request.request_id = request_id  # type: ignore[attr-defined]
        token = set_request_context(context)
        try:
            response = self.get_response(request)
        finally:
            reset_request_context(token)
        response["X-Request-Id"] = request_id
        return response
