"""Prompt templates: Jinja2 syntax (`{{ variable }}`, `{% if %}`, `{% for %}`, filters) in a sandbox.

Beyond Jinja's own sandbox, templates may not read attributes or items, call anything, or
include, import, extend or define macros: a template can only place the variables it is given.
Errors carry the message index and line so that the editor and the API can point at them.
"""

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

MAX_TEMPLATE_CHARS = 100_000
_FORBIDDEN_NODES: dict[type[nodes.Node], str] = {
    nodes.Getattr: "attribute access",
    nodes.Getitem: "item access",
    nodes.Call: "function calls",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "import",
    nodes.Extends: "extends",
    nodes.Macro: "macros",
    nodes.CallBlock: "call blocks",
    nodes.Block: "blocks",
}


class _Sandbox(SandboxedEnvironment):
    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return False


_env = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


@dataclass(frozen=True)
class TemplateProblem(Exception):
    message: str
    message_index: int
    line: int | None = None

    def __str__(self) -> str:
        where = f"message {self.message_index + 1}"
        if self.line is not None:
            where += f", line {self.line}"
        return f"{where}: {self.message}"


def _parse(source: str, index: int) -> nodes.Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise TemplateProblem(f"template longer than {MAX_TEMPLATE_CHARS} characters", index)
    try:
        tree = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(exc.message or "syntax error", index, exc.lineno) from None
    for node_type, what in _FORBIDDEN_NODES.items():
        found = next(iter(tree.find_all(node_type)), None)
        if found is not None:
            raise TemplateProblem(f"{what} is not allowed in prompt templates", index, found.lineno)
    return tree


@lru_cache(maxsize=512)
def _compiled(source: str, index: int) -> Template:
    """A template checked and compiled once: an evaluation run renders the same messages for every case."""
    return _env.from_string(_parse(source, index))


def template_variables(templates: list[str]) -> list[str]:
    """The variables these templates use, sorted; raises TemplateProblem on the first bad template."""
    found: set[str] = set()
    for index, source in enumerate(templates):
        found |= meta.find_undeclared_variables(_parse(source, index))
    return sorted(found)


class VariablesMismatch(Exception):
    def __init__(self, missing: list[str], unknown: list[str]):
        self.missing = missing
        self.unknown = unknown
        parts = []
        if missing:
            parts.append("missing variable" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing))
        if unknown:
            parts.append("unknown variable" + ("s" if len(unknown) > 1 else "") + ": " + ", ".join(unknown))
        super().__init__("; ".join(parts))


def render_messages(
    messages: list[dict[str, str]], variables: dict[str, Any], *, expected: list[str]
) -> list[dict[str, str]]:
    missing = sorted(set(expected) - set(variables))
    unknown = sorted(set(variables) - set(expected))
    if missing or unknown:
        raise VariablesMismatch(missing, unknown)
    rendered = []
    for index, message in enumerate(messages):
        try:
            text = _compiled(message["template"], index).render(**variables)
        except (SecurityError, UndefinedError, TypeError) as exc:
            raise TemplateProblem(str(exc), index) from None
        rendered.append({"role": message["role"], "content": text})
    return rendered
