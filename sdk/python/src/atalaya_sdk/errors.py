"""The SDK's exceptions. Every one is an AtalayaError."""

from __future__ import annotations

from typing import Any


class AtalayaError(Exception):
    """Base class of everything the SDK raises."""


class ConsoleUnavailable(AtalayaError):
    """The console could not be reached (or answered 5xx) and there is no last known good answer to serve."""


class ApiError(AtalayaError):
    """The console refused the request: its error format `{"error": {"code", "message", "details"}}`."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        super().__init__(f"{status} {code}: {message}")

    @classmethod
    def from_response(cls, status: int, body: Any) -> ApiError:
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return cls(status, "http_error", f"HTTP {status}")
        code = str(error.get("code") or "http_error")
        message = str(error.get("message") or f"HTTP {status}")
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
        kind = {"budget_exhausted": BudgetExhausted}.get(code) or (PromptNotFound if status == 404 else cls)
        return kind(status, code, message, details)


class PromptNotFound(ApiError):
    """No such prompt, or the label points at nothing (404)."""


class BudgetExhausted(ApiError):
    """A hard budget that covers this call is spent (429 `budget_exhausted`): stop spending.

    `budget` names it; `amount`, `spend`, `currency` and `period_end` say how and until when."""

    @property
    def budget(self) -> str:
        return str(self.details.get("budget", ""))

    @property
    def amount(self) -> str | None:
        return self.details.get("amount")

    @property
    def spend(self) -> str | None:
        return self.details.get("spend")

    @property
    def currency(self) -> str | None:
        return self.details.get("currency")

    @property
    def period_end(self) -> str | None:
        return self.details.get("period_end")


class RenderError(AtalayaError):
    """A prompt could not be rendered with these variables."""


class VariablesMismatch(RenderError):
    """Variables missing or unknown to the template (the console's render answers 422 for the same)."""

    def __init__(self, missing: list[str], unknown: list[str]):
        self.missing = missing
        self.unknown = unknown
        parts = []
        if missing:
            parts.append("missing variable" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing))
        if unknown:
            parts.append("unknown variable" + ("s" if len(unknown) > 1 else "") + ": " + ", ".join(unknown))
        super().__init__("; ".join(parts))


class TemplateProblem(RenderError):
    """The template itself is at fault (syntax, or something the sandbox refuses)."""

    def __init__(self, message: str, message_index: int, line: int | None = None):
        self.message = message
        self.message_index = message_index
        self.line = line
        where = f"message {message_index + 1}" + (f", line {line}" if line is not None else "")
        super().__init__(f"{where}: {message}")
