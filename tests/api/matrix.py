"""What the permission-matrix tests of the registry, tuning and deployments APIs share: the roles, the
expected statuses by role, an operation described once, and how to call it."""

from dataclasses import dataclass
from typing import Any

ROLES = ["admin", "gov", "eng", "owner", "ann1", "anon"]
READERS = {"admin", "gov", "eng", "owner"}


def expect(default: int, anon: int = 401, **by_role: int) -> dict[str, int]:
    """The status each role gets: `default`, anonymous callers `anon`, and the exceptions by name."""
    statuses = dict.fromkeys(ROLES, default)
    statuses["anon"] = anon
    statuses.update(by_role)
    return statuses


def team_slug(team: str) -> str:
    """`own` is support (where the matrix's users hold their roles), `other` finance (none of them)."""
    return "support" if team == "own" else "finance"


@dataclass(frozen=True)
class Operation:
    name: str  # the OpenAPI operation id
    method: str
    url: Any  # (scene, team) -> str
    own: dict[str, int]
    other: dict[str, int]
    scope: str  # the token scope it needs
    token_status: int  # what a token with that scope gets
    body: Any = None  # (scene, team) -> the JSON body, or None

    @property
    def writes(self) -> bool:
        return self.method != "get"


def call(client: Any, op: Operation, scene: Any, team: str = "own") -> Any:
    method = getattr(client, op.method)
    if op.body is None:
        return method(op.url(scene, team), format="json") if op.writes else method(op.url(scene, team))
    return method(op.url(scene, team), op.body(scene, team), format="json")
