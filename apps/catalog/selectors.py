"""Reads of the prompt catalog, always narrowed to what the user may see."""

import difflib
import html
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Prefetch, Q, QuerySet
from django.utils.html import format_html
from django.utils.safestring import SafeString

from apps.accounts.models import User
from apps.accounts.roles import CATALOG_READERS
from apps.accounts.selectors import user_has_role, user_team_ids
from apps.catalog.models import Prompt, PromptLabel, PromptVersion, VersionStatus
from apps.catalog.services import resolve_cache_key
from apps.catalog.templating import TemplateProblem, VariablesMismatch, render_messages
from apps.common.exceptions import Conflict, NotFound, Unprocessable


def prompt_list(
    *, user: User, team_id: int | None = None, tag: str = "", search: str = "", status: str = ""
) -> QuerySet[Prompt]:
    qs = Prompt.objects.filter(team_id__in=user_team_ids(user, CATALOG_READERS))
    if team_id is not None:
        qs = qs.filter(team_id=team_id)
    if tag:
        qs = qs.filter(tags__name=tag.lower())
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(description__icontains=search))
    if status:
        qs = qs.filter(versions__status=status)
    return (
        qs.distinct()
        .select_related("team", "created_by")
        .prefetch_related("tags", Prefetch("labels", queryset=PromptLabel.objects.select_related("version")))
        .order_by("team__slug", "name")
    )


def prompt_get(*, user: User, name: str, team_slug: str | None = None) -> Prompt:
    """A prompt by name among the user's teams. A name used in two of them needs the team."""
    qs = Prompt.objects.filter(name=name, team_id__in=user_team_ids(user, CATALOG_READERS)).select_related(
        "team"
    )
    if team_slug:
        qs = qs.filter(team__slug=team_slug)
    found = list(qs[:2])
    if not found:
        raise NotFound(f"No prompt named {name!r}.")
    if len(found) > 1:
        raise Conflict(
            f"{name!r} exists in several of your teams: pass ?team=<slug>.",
            code="ambiguous_name",
            details={"teams": sorted(p.team.slug for p in qs)},
        )
    return found[0]


def prompt_versions(*, prompt: Prompt) -> QuerySet[PromptVersion]:
    return prompt.versions.select_related("created_by").prefetch_related("labels").order_by("-number")


def prompt_version_get(*, user: User, version_id: int) -> PromptVersion:
    version = (
        PromptVersion.objects.select_related("prompt__team", "created_by")
        .filter(pk=version_id, prompt__team_id__in=user_team_ids(user, CATALOG_READERS))
        .first()
    )
    if version is None:
        raise NotFound("No such prompt version.")
    return version


def prompt_version_by_number(*, prompt: Prompt, number: int) -> PromptVersion:
    version = prompt.versions.select_related("created_by").filter(number=number).first()
    if version is None:
        raise NotFound(f"{prompt.name} has no version {number}.")
    return version


def prompt_version_by_label(*, prompt: Prompt, label: str) -> PromptVersion:
    row = PromptLabel.objects.select_related("version__created_by").filter(prompt=prompt, name=label).first()
    if row is None:
        raise NotFound(f"{prompt.name!r} has no label {label!r}.", code="label_not_found")
    return row.version


def last_approved_before(*, version: PromptVersion) -> PromptVersion | None:
    """What a reviewer compares against: the newest approved (or retired) version older than this one."""
    return (
        version.prompt.versions.filter(
            number__lt=version.number, status__in=[VersionStatus.APPROVED, VersionStatus.RETIRED]
        )
        .order_by("-number")
        .first()
    )


def resolve_payload(version: PromptVersion, label: str) -> dict[str, Any]:
    prompt = version.prompt
    return {
        "name": prompt.name,
        "team": prompt.team.slug,
        "label": label,
        "version": version.number,
        "messages": version.messages,
        "variables": version.variables,
        "model": version.model,
        "parameters": version.parameters,
        "content_hash": version.content_hash,
        "etag": version.etag,
    }


def prompt_resolve(
    *, user: User, name: str, label: str, team_id: int | None = None, team_slug: str | None = None
) -> dict[str, Any]:
    """What an application fetches: the version a label points at. Cached per (team, name, label) and
    invalidated when the label moves; permission is checked on every call."""
    if team_id is not None:
        if not user_has_role(user, team_id, CATALOG_READERS):
            raise NotFound(f"No prompt named {name!r}.")
        key = resolve_cache_key(team_id, name, label)
        cached = cache.get(key)
        if cached is not None:
            return cached
        prompt = Prompt.objects.select_related("team").filter(team_id=team_id, name=name).first()
        if prompt is None:
            raise NotFound(f"No prompt named {name!r}.")
    else:
        prompt = prompt_get(user=user, name=name, team_slug=team_slug)
        key = resolve_cache_key(prompt.team_id, name, label)
        cached = cache.get(key)
        if cached is not None:
            return cached
    row = PromptLabel.objects.select_related("version").filter(prompt=prompt, name=label).first()
    if row is None:
        raise NotFound(f"{name!r} has no label {label!r}.", code="label_not_found")
    row.version.prompt = prompt
    payload = resolve_payload(row.version, label)
    cache.set(key, payload, settings.CATALOG_RESOLVE_CACHE_SECONDS)
    return payload


def prompt_render(*, version: PromptVersion, variables: dict[str, Any]) -> list[dict[str, str]]:
    try:
        return render_messages(version.messages, variables, expected=version.variables)
    except VariablesMismatch as exc:
        raise Unprocessable(
            str(exc), code="invalid_variables", details={"missing": exc.missing, "unknown": exc.unknown}
        ) from None
    except TemplateProblem as problem:
        raise Unprocessable(
            f"Template error in {problem}",
            code="template_error",
            details={"message_index": problem.message_index, "line": problem.line},
        ) from None


# Diff: side by side, line by line, with changed words highlighted.


@dataclass(frozen=True)
class DiffRow:
    kind: str  # equal | replace | delete | insert
    left_no: int | None
    left: SafeString
    right_no: int | None
    right: SafeString


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
_EMPTY = SafeString("")


def _escaped(text: str, tag: str = "") -> SafeString:
    return format_html("<{}>{}</{}>", tag, text, tag) if tag else SafeString(html.escape(text))  # nosec B703 # escaped here


def _word_diff(a: str, b: str) -> tuple[SafeString, SafeString]:
    left_tokens, right_tokens = _TOKEN.findall(a), _TOKEN.findall(b)
    left: list[SafeString] = []
    right: list[SafeString] = []
    matcher = difflib.SequenceMatcher(a=left_tokens, b=right_tokens, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        old, new = "".join(left_tokens[i1:i2]), "".join(right_tokens[j1:j2])
        if op == "equal":
            left.append(_escaped(old))
            right.append(_escaped(new))
            continue
        if old:
            left.append(_escaped(old, "del"))
        if new:
            right.append(_escaped(new, "ins"))
    return SafeString("".join(left)), SafeString("".join(right))  # nosec B703 # parts escaped by _escaped


def _lines(version: PromptVersion | None) -> list[str]:
    if version is None:
        return []
    out = [f"model: {version.model}"]
    for key in sorted(version.parameters):
        out.append(f"parameter {key}: {version.parameters[key]}")
    for message in version.messages:
        out.append(f"[{message['role']}]")
        out.extend(message["template"].splitlines() or [""])
    return out


def version_diff(*, old: PromptVersion | None, new: PromptVersion) -> list[DiffRow]:
    """Rows of a side-by-side diff of two versions' content; changed words wrapped in <del>/<ins>."""
    a, b = _lines(old), _lines(new)
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for k in range(i2 - i1):
                text = _escaped(a[i1 + k])
                rows.append(DiffRow("equal", i1 + k + 1, text, j1 + k + 1, text))
            continue
        for k in range(max(i2 - i1, j2 - j1)):
            left = a[i1 + k] if i1 + k < i2 else None
            right = b[j1 + k] if j1 + k < j2 else None
            if left is not None and right is not None:
                left_html, right_html = _word_diff(left, right)
                rows.append(DiffRow("replace", i1 + k + 1, left_html, j1 + k + 1, right_html))
            elif left is not None:
                rows.append(DiffRow("delete", i1 + k + 1, _escaped(left, "del"), None, _EMPTY))
            else:
                rows.append(DiffRow("insert", None, _EMPTY, j1 + k + 1, _escaped(right or "", "ins")))
    return rows
