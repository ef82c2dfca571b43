"""Atalaya's application SDK: cached prompt resolution, non-blocking logging, feedback."""

from atalaya_sdk.client import AsyncClient, Client, Trace
from atalaya_sdk.errors import (
    ApiError,
    AtalayaError,
    BudgetExhausted,
    ConsoleUnavailable,
    PromptNotFound,
    RenderError,
    TemplateProblem,
    VariablesMismatch,
)
from atalaya_sdk.prompts import Prompt

__all__ = [
    "ApiError",
    "AsyncClient",
    "AtalayaError",
    "BudgetExhausted",
    "Client",
    "ConsoleUnavailable",
    "Prompt",
    "PromptNotFound",
    "RenderError",
    "TemplateProblem",
    "Trace",
    "VariablesMismatch",
]
__version__ = "0.1.0"
