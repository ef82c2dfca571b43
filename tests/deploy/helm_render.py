"""A small renderer for the subset of Go templates and Sprig that deploy/helm/atalaya uses, so that the
chart can be rendered and its output parsed without a Helm binary. It is a test aid, not Helm: an action
or function it does not know raises, so a template that outgrows it fails loudly instead of passing.
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ACTION = re.compile(r"\{\{(-?)(\s*)(.*?)(\s*)(-?)\}\}", re.S)
TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\(|\)|:=|,|[^\s(),]+')


class TemplateError(Exception):
    pass


@dataclass
class Node:
    kind: str  # text, action, if, range, with, define
    value: str = ""
    body: list["Node"] = field(default_factory=list)
    orelse: list["Node"] = field(default_factory=list)


def _lex(source: str) -> list[tuple[str, str]]:
    """[("text", …) | ("action", …)], with the trim markers applied to the neighbouring text."""
    parts: list[tuple[str, str]] = []
    pos = 0
    trim_next = False
    for match in ACTION.finditer(source):
        text = source[pos : match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        parts.append(("text", text))
        body = match.group(3)
        if not (body.startswith("/*") and body.endswith("*/")):
            parts.append(("action", body))
        trim_next = bool(match.group(5))
        pos = match.end()
    tail = source[pos:]
    parts.append(("text", tail.lstrip() if trim_next else tail))
    return parts


def _parse(parts: list[tuple[str, str]]) -> list[Node]:
    root: list[Node] = []
    stack: list[tuple[Node, list[Node]]] = []
    current = root
    for kind, value in parts:
        if kind == "text":
            if value:
                current.append(Node("text", value))
            continue
        word = value.split(None, 1)[0] if value else ""
        rest = value[len(word) :].strip()
        if word in {"if", "range", "with", "define"}:
            node = Node(word, rest)
            current.append(node)
            stack.append((node, current))
            current = node.body
        elif word == "else":
            if not stack:
                raise TemplateError("else outside a block")
            node = stack[-1][0]
            current = node.orelse
        elif word == "end":
            if not stack:
                raise TemplateError("end without a block")
            _node, current = stack.pop()
        else:
            current.append(Node("action", value))
    if stack:
        raise TemplateError(f"unclosed {stack[-1][0].kind}")
    return root


def _truthy(value: Any) -> bool:
    return bool(value)


def _to_yaml(value: Any) -> str:
    if value in ({}, [], None):
        return {dict: "{}", list: "[]"}.get(type(value), "null")
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True).rstrip("\n")


def _go_printf(fmt: str, *args: Any) -> str:
    return re.sub(r"%[sdv]", "{}", fmt).format(*args)


class Renderer:
    def __init__(self, chart_dir: Path, values: dict[str, Any], release: str = "atalaya"):
        chart = yaml.safe_load((chart_dir / "Chart.yaml").read_text())
        self.root = {
            "Values": values,
            "Chart": {"Name": chart["name"], "Version": chart["version"], "AppVersion": chart["appVersion"]},
            "Release": {"Name": release, "Namespace": "default", "Service": "Helm"},
        }
        self.templates: dict[str, list[Node]] = {}
        self.files: dict[str, list[Node]] = {}
        for path in sorted((chart_dir / "templates").iterdir()):
            tree = _parse(_lex(path.read_text()))
            for node in tree:
                if node.kind == "define":
                    self.templates[json.loads(node.value)] = node.body
            if path.suffix == ".yaml":
                self.files[path.name] = tree
        self.functions: dict[str, Callable[..., Any]] = {
            "include": lambda name, ctx: self._run(self.templates[name], ctx, {"$": ctx}),
            "nindent": lambda n, s: (
                "\n" + "\n".join(" " * n + line if line else line for line in str(s).split("\n"))
            ),
            "indent": lambda n, s: "\n".join(" " * n + line if line else line for line in str(s).split("\n")),
            "toYaml": _to_yaml,
            "toJson": lambda v: json.dumps(v, sort_keys=True, separators=(",", ":")),
            "quote": lambda v: json.dumps("" if v is None else str(v)),
            "toString": lambda v: str(v).lower() if isinstance(v, bool) else str(v),
            "default": lambda d, v=None: v if _truthy(v) else d,
            "printf": _go_printf,
            "trunc": lambda n, s: s[:n],
            "trimSuffix": lambda suffix, s: s[: -len(suffix)] if suffix and s.endswith(suffix) else s,
            "contains": lambda sub, s: sub in s,
            "sha256sum": lambda s: hashlib.sha256(s.encode()).hexdigest(),
            "not": lambda v: not _truthy(v),
            "required": self._required,
        }

    @staticmethod
    def _required(message: str, value: Any) -> Any:
        if value in (None, ""):
            raise TemplateError(message)
        return value

    def render(self, name: str) -> str:
        return self._run(self.files[name], self.root, {"$": self.root})

    # evaluation

    def _run(self, nodes: list[Node], dot: Any, variables: dict[str, Any]) -> str:
        out: list[str] = []
        for node in nodes:
            if node.kind == "text":
                out.append(node.value)
            elif node.kind == "action":
                value = self._pipeline(node.value, dot, variables)
                out.append("" if value is None else self.functions["toString"](value))
            elif node.kind == "if":
                branch = node.body if _truthy(self._pipeline(node.value, dot, variables)) else node.orelse
                out.append(self._run(branch, dot, variables))
            elif node.kind == "with":
                value = self._pipeline(node.value, dot, variables)
                out.append(
                    self._run(node.body, value, variables)
                    if _truthy(value)
                    else self._run(node.orelse, dot, variables)
                )
            elif node.kind == "range":
                out.append(self._range(node, dot, variables))
            elif node.kind == "define":
                continue
        return "".join(out)

    def _range(self, node: Node, dot: Any, variables: dict[str, Any]) -> str:
        match = re.fullmatch(r"(\$\w+)\s*,\s*(\$\w+)\s*:=\s*(.+)", node.value)
        names = (match.group(1), match.group(2)) if match else None
        collection = self._pipeline(match.group(3) if match else node.value, dot, variables)
        items = (
            sorted(collection.items()) if isinstance(collection, dict) else list(enumerate(collection or []))
        )
        out = []
        for key, value in items:
            scope = dict(variables)
            if names:
                scope[names[0]], scope[names[1]] = key, value
            out.append(self._run(node.body, value, scope))
        return "".join(out)

    def _pipeline(self, text: str, dot: Any, variables: dict[str, Any]) -> Any:
        tokens = TOKEN.findall(text)
        value, rest = self._pipe(tokens, dot, variables)
        if rest:
            raise TemplateError(f"unexpected {rest!r} in {text!r}")
        return value

    def _pipe(self, tokens: list[str], dot: Any, variables: dict[str, Any]) -> tuple[Any, list[str]]:
        commands: list[list[Any]] = [[]]
        while tokens and tokens[0] != ")":
            token = tokens.pop(0)
            if token == "|":
                commands.append([])
            elif token == "(":
                value, tokens = self._pipe(tokens, dot, variables)
                if not tokens or tokens.pop(0) != ")":
                    raise TemplateError("unclosed (")
                commands[-1].append(("value", value))
            else:
                commands[-1].append(("token", token))
        result: Any = None
        for i, command in enumerate(commands):
            args = [self._arg(kind, item, dot, variables) for kind, item in command[1:]]
            if i:
                args.append(result)
            kind, head = command[0]
            if kind == "token" and head in self.functions:
                result = self.functions[head](*args)
            elif kind == "token" and re.fullmatch(r"[a-z]\w*", head):
                raise TemplateError(f"unknown function {head}")
            else:
                if args:
                    raise TemplateError(f"arguments after a value: {command}")
                result = self._arg(kind, head, dot, variables)
        return result, tokens

    def _arg(self, kind: str, token: Any, dot: Any, variables: dict[str, Any]) -> Any:
        if kind == "value":
            return token
        if token.startswith('"'):
            return json.loads(token)
        if re.fullmatch(r"-?\d+", token):
            return int(token)
        if token in {"true", "false"}:
            return token == "true"
        if token == ".":
            return dot
        if token.startswith("$"):
            name, _, path = token.partition(".")
            base = variables[name]
            return self._field(base, path) if path else base
        if token.startswith("."):
            return self._field(dot, token[1:])
        raise TemplateError(f"cannot evaluate {token!r}")

    @staticmethod
    def _field(base: Any, path: str) -> Any:
        for part in path.split("."):
            if not isinstance(base, dict) or part not in base:
                return None
            base = base[part]
        return base
