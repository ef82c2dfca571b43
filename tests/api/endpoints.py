"""Every API v1 operation, described once, for the permission matrix and the token-scope tests.

`team` is "own" (objects of support, where the matrix's users hold their role) or "other" (objects of
finance, where none of them is a member)."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.api.conftest import Scene

ROLES = ["admin", "gov", "eng", "owner", "ann1", "anon"]
READERS = {"admin", "gov", "eng", "owner"}


def expect(default: int, anon: int = 401, **by_role: int) -> dict[str, int]:
    statuses = dict.fromkeys(ROLES, default)
    statuses["anon"] = anon
    statuses.update(by_role)
    return statuses


def _team(team: str) -> str:
    return "support" if team == "own" else "finance"


def _prompt(scene: Scene, team: str) -> str:
    return "greeting" if team == "own" else "ledger"


def _draft(scene: Scene, team: str) -> int:
    return (scene.support_versions if team == "own" else scene.finance_versions)[1].pk


def _decide_request(scene: Scene, team: str) -> int:
    return (scene.support_decide_request if team == "own" else scene.finance_decide_request).pk


def _withdraw_request(scene: Scene, team: str) -> int:
    return (scene.support_withdraw_request if team == "own" else scene.finance_withdraw_request).pk


def _token(scene: Scene, team: str) -> int:
    return (scene.support_token if team == "own" else scene.finance_token).pk


VARIABLES = {"company": "ACME", "question": "Where is my order?"}
NEW_VERSION = {
    "messages": [{"role": "system", "template": "Hello {{ name }}"}],
    "model": "gemini-2.5-flash",
    "parameters": {"temperature": 0.1},
    "message": "from the API",
}


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    url: Callable[[Scene, str], str]
    own: dict[str, int]
    other: dict[str, int]
    scope: str  # the token scope it needs ("session" for session-only operations)
    token_user: str  # a user who succeeds with a token carrying the scope
    token_status: int
    body: Callable[[Scene, str], Any] = field(default=lambda scene, team: None)

    @property
    def writes(self) -> bool:
        return self.method != "get" and self.name not in {"prompts_render"}


ENDPOINTS = [
    Endpoint(
        "prompts_list",
        "get",
        lambda s, t: f"/api/v1/prompts/?team={_team(t)}",
        own=expect(200),
        other=expect(200),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "prompts_create",
        "post",
        lambda s, t: "/api/v1/prompts/",
        body=lambda s, t: {"team": _team(t), "name": "fresh", "description": "new", "tags": ["x"]},
        own=expect(403, admin=201, eng=201),
        other=expect(404),
        scope="prompts:write",
        token_user="eng",
        token_status=201,
    ),
    Endpoint(
        "prompts_retrieve",
        "get",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "versions_create",
        "post",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/versions/",
        body=lambda s, t: NEW_VERSION,
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope="prompts:write",
        token_user="eng",
        token_status=201,
    ),
    Endpoint(
        "versions_retrieve",
        "get",
        lambda s, t: f"/api/v1/prompt-versions/{_draft(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "versions_update",
        "patch",
        lambda s, t: f"/api/v1/prompt-versions/{_draft(s, t)}/",
        body=lambda s, t: {"messages": [{"role": "user", "template": "Edited {{ name }}"}], "message": "ed"},
        own=expect(403, admin=200, eng=200, ann1=404),
        other=expect(404),
        scope="prompts:write",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "versions_submit",
        "post",
        lambda s, t: f"/api/v1/prompt-versions/{_draft(s, t)}/submit/",
        own=expect(403, admin=201, eng=201, ann1=404),
        other=expect(404),
        scope="prompts:write",
        token_user="eng",
        token_status=201,
    ),
    Endpoint(
        "approvals_list",
        "get",
        lambda s, t: "/api/v1/approvals/" if t == "own" else "/api/v1/approvals/?status=open",
        own=expect(200),
        other=expect(200),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "approvals_retrieve",
        "get",
        lambda s, t: f"/api/v1/approvals/{_decide_request(s, t)}/",
        own=expect(200, ann1=404),
        other=expect(404),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "approvals_decide",
        "post",
        lambda s, t: f"/api/v1/approvals/{_decide_request(s, t)}/decisions/",
        body=lambda s, t: {"decision": "approve", "comment": "looks right"},
        own=expect(403, gov=201, ann1=404),
        other=expect(404),
        scope="approvals:write",
        token_user="gov",
        token_status=201,
    ),
    Endpoint(
        "approvals_withdraw",
        "post",
        lambda s, t: f"/api/v1/approvals/{_withdraw_request(s, t)}/withdraw/",
        own=expect(403, eng=200, ann1=404),
        other=expect(404),
        scope="approvals:write",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "labels_set",
        "put",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/labels/staging/",
        body=lambda s, t: {"version": 1},
        own=expect(200, owner=403, ann1=404),
        other=expect(404),
        scope="prompts:write",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "labels_set_protected",
        "put",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/labels/production/",
        body=lambda s, t: {"version": 1},
        own=expect(202, gov=200, owner=403, ann1=404),
        other=expect(404),
        scope="prompts:write",
        token_user="gov",
        token_status=200,
    ),
    Endpoint(
        "prompts_render",
        "post",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/render",
        body=lambda s, t: {"version": 1, "variables": VARIABLES},
        own=expect(200, ann1=404),
        other=expect(404),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "prompts_resolve",
        "get",
        lambda s, t: f"/api/v1/prompts/{_prompt(s, t)}/resolve?label=production",
        own=expect(200, ann1=404),
        other=expect(404),
        scope="prompts:read",
        token_user="eng",
        token_status=200,
    ),
    Endpoint(
        "audit_list",
        "get",
        lambda s, t: f"/api/v1/audit/?team={_team(t)}",
        own=expect(403, admin=200, gov=200),
        other=expect(403, admin=200, gov=200),
        scope="audit:read",
        token_user="gov",
        token_status=200,
    ),
    Endpoint(
        "audit_verify",
        "get",
        lambda s, t: "/api/v1/audit/verify",
        own=expect(403, admin=200, gov=200),
        other=expect(403, admin=200, gov=200),
        scope="audit:read",
        token_user="gov",
        token_status=200,
    ),
    Endpoint(
        "tokens_list",
        "get",
        lambda s, t: "/api/v1/tokens/",
        own=expect(200),
        other=expect(200),
        scope="session",
        token_user="admin",
        token_status=403,
    ),
    Endpoint(
        "tokens_create",
        "post",
        lambda s, t: "/api/v1/tokens/",
        body=lambda s, t: {"name": "ci", "team": _team(t), "scopes": ["prompts:read"]},
        own=expect(201),
        other=expect(404),
        scope="session",
        token_user="admin",
        token_status=403,
    ),
    Endpoint(
        "tokens_revoke",
        "delete",
        lambda s, t: f"/api/v1/tokens/{_token(s, t)}/",
        own=expect(404, admin=200),
        other=expect(404),
        scope="session",
        token_user="admin",
        token_status=403,
    ),
]

BY_NAME = {endpoint.name: endpoint for endpoint in ENDPOINTS}


def call(client, endpoint: Endpoint, scene: Scene, team: str = "own", **extra: Any):
    body = endpoint.body(scene, team)
    method = getattr(client, endpoint.method)
    if body is None:
        return method(endpoint.url(scene, team), **extra)
    return method(endpoint.url(scene, team), body, format="json", **extra)
