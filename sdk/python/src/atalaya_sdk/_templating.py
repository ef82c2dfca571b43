"""Prompt templates, rendered exactly as the console renders them (apps/catalog/templating.py in the
console; tests/sdk/test_render_parity.py checks both against the console's `/render` endpoint).

Jinja2 syntax in a sandbox that may only place the variables it is given: no attribute or item access,
no calls, no include, import, extends, macros or blocks. Undefined variables are errors.
"""

from __future__ import annotations

from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.sandbox import SandboxedEnvironment

from atalaya_sdk.errors import TemplateProblem, VariablesMismatch

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


def compile_template(source: str, index: int) -> Template:
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
    return _env.from_string(tree)


def render_compiled(
    roles: list[str], templates: list[Template], variables: dict[str, Any], expected: frozenset[str]
) -> list[dict[str, str]]:
    given = variables.keys()
    if given != expected:
        raise VariablesMismatch(sorted(expected - given), sorted(given - expected))
    rendered = []
    for index, (role, template) in enumerate(zip(roles, templates, strict=True)):
        try:
            text = template.render(**variables)
        except (SecurityError, UndefinedError, TypeError) as exc:
            raise TemplateProblem(str(exc), index) from None
        rendered.append({"role": role, "content": text})
    return rendered
