"""Every endpoint doing its job, the way an engineer, a reviewer and an application use them."""

from apps.accounts.models import ApiToken
from apps.audit.models import AuditEvent
from apps.catalog.models import PromptVersion
from tests.factories import make_token

MESSAGES = [
    {"role": "system", "template": "You answer for {{ company }}."},
    {"role": "user", "template": "{{ question }}"},
]


def test_author_review_label_resolve_and_audit(world, api_as):
    eng, gov = api_as(world.eng), api_as(world.gov)

    # An engineer creates a prompt and writes version 1.
    response = eng.post(
        "/api/v1/prompts/",
        {"team": "support", "name": "faq", "description": "Answers", "tags": ["Support", "faq"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert response.json()["tags"] == ["faq", "support"]
    response = eng.post(
        "/api/v1/prompts/faq/versions/",
        {
            "messages": MESSAGES,
            "model": "gemini-2.5-flash",
            "parameters": {"temperature": 0.3},
            "message": "v1",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    version = response.json()
    assert version["number"] == 1 and version["status"] == "draft"
    assert version["variables"] == ["company", "question"]
    assert version["approval_request"] is None

    # Edits the draft, previews it, submits it.
    edited = [*MESSAGES[:1], {"role": "user", "template": "Question: {{ question }}"}]
    response = eng.patch(f"/api/v1/prompt-versions/{version['id']}/", {"messages": edited}, format="json")
    assert response.status_code == 200
    assert response.json()["messages"] == edited
    assert response.json()["content_hash"] != version["content_hash"]
    assert response.json()["model"] == "gemini-2.5-flash"
    response = eng.post(
        "/api/v1/prompts/faq/render",
        {"version": 1, "variables": {"company": "ACME", "question": "Hours?"}},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["messages"] == [
        {"role": "system", "content": "You answer for ACME."},
        {"role": "user", "content": "Question: Hours?"},
    ]
    response = eng.post(f"/api/v1/prompt-versions/{version['id']}/submit/")
    assert response.status_code == 201
    request_id = response.json()["id"]
    assert response.json()["status"] == "open" and response.json()["requested_by"] == "eng"
    assert eng.get(f"/api/v1/prompt-versions/{version['id']}/").json()["approval_request"] == request_id

    # Governance finds it in their queue and approves it.
    queue = gov.get("/api/v1/approvals/?mine=1").json()["results"]
    assert [r["id"] for r in queue] == [request_id]
    assert eng.get("/api/v1/approvals/?mine=1").json()["results"] == []
    detail = gov.get(f"/api/v1/approvals/{request_id}/").json()
    assert detail["can_decide"] is True and detail["decisions"] == []
    response = gov.post(
        f"/api/v1/approvals/{request_id}/decisions/",
        {"decision": "approve", "comment": "Good"},
        format="json",
    )
    assert response.status_code == 201
    assert response.json()["decision"]["reviewer"] == "gov"
    assert response.json()["approval_request"]["status"] == "approved"
    detail = gov.get(f"/api/v1/approvals/{request_id}/").json()
    assert [(d["reviewer"], d["decision"], d["comment"]) for d in detail["decisions"]] == [
        ("gov", "approve", "Good")
    ]
    assert gov.get("/api/v1/approvals/?status=open").json()["results"] == []

    # The engineer moves staging directly and asks for production; governance approves the move.
    response = eng.put("/api/v1/prompts/faq/labels/staging/", {"version": 1}, format="json")
    assert response.status_code == 200
    assert response.json()["name"] == "staging" and response.json()["version"] == 1
    response = eng.put("/api/v1/prompts/faq/labels/production/", {"version": 1}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "pending_approval"
    move_request = response.json()["approval_request"]
    assert eng.get("/api/v1/prompts/faq/").json()["labels"] == {"staging": 1}
    gov.post(f"/api/v1/approvals/{move_request}/decisions/", {"decision": "approve"}, format="json")
    prompt = eng.get("/api/v1/prompts/faq/").json()
    assert prompt["labels"] == {"production": 1, "staging": 1}
    assert [(v["number"], v["status"], v["created_by"]) for v in prompt["versions"]] == [
        (1, "approved", "eng")
    ]

    # An application resolves it with a team token; render by label works too.
    app = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    resolved = app.get("/api/v1/prompts/faq/resolve?label=production")
    assert resolved.status_code == 200 and resolved.json()["version"] == 1
    rendered = app.post(
        "/api/v1/prompts/faq/render",
        {"label": "production", "variables": {"company": "ACME", "question": "Hi"}},
        format="json",
    )
    assert rendered.status_code == 200 and rendered.json()["label"] == "production"

    # Every step is in the audit trail, and the chain holds.
    actions = [e["action"] for e in gov.get("/api/v1/audit/?team=support&page_size=100").json()["results"]]
    for action in [
        "catalog.prompt_created",
        "catalog.version_created",
        "catalog.version_updated",
        "catalog.version_submitted",
        "workflows.decision_recorded",
        "catalog.version_approved",
        "catalog.label_moved",
        "catalog.label_move_requested",
    ]:
        assert action in actions, action
    verify = gov.get("/api/v1/audit/verify").json()
    assert verify == {
        "ok": True,
        "events_checked": AuditEvent.objects.count(),
        "first_broken_sequence": None,
        "reason": "",
    }


def test_prompt_list_filters(world, api_as):
    eng = api_as(world.eng)
    for name, tags in [("alpha", ["billing"]), ("beta", ["faq"]), ("gamma", [])]:
        eng.post("/api/v1/prompts/", {"team": "support", "name": name, "tags": tags}, format="json")
    eng.post(
        "/api/v1/prompts/beta/versions/", {"messages": MESSAGES, "model": "m", "message": "x"}, format="json"
    )

    def names(query: str) -> list[str]:
        response = eng.get(f"/api/v1/prompts/{query}")
        assert response.status_code == 200, response.content
        return sorted(p["name"] for p in response.json()["results"])

    assert names("") == ["alpha", "beta", "gamma"]
    assert names("?tag=billing") == ["alpha"]
    assert names("?search=amm") == ["gamma"]
    assert names("?status=draft") == ["beta"]
    assert names("?team=support") == ["alpha", "beta", "gamma"]
    assert names("?team=finance") == []
    assert names("?team=nowhere") == []
    page = eng.get("/api/v1/prompts/?page_size=2").json()
    assert len(page["results"]) == 2 and page["next"]
    rest = eng.get(page["next"]).json()
    assert len(rest["results"]) == 1


def test_create_prompt_with_a_token_defaults_to_its_team(world, api_as):
    client = api_as(token=make_token(world.eng2, world.finance, "prompts:write"))
    response = client.post("/api/v1/prompts/", {"name": "ledger-bot"}, format="json")
    assert response.status_code == 201
    assert response.json()["team"] == "finance"
    response = client.post("/api/v1/prompts/", {"name": "other", "team": "support"}, format="json")
    assert response.status_code == 404  # the token is bound to finance


def test_audit_filters(world, api_as):
    eng = api_as(world.eng)
    eng.post("/api/v1/prompts/", {"team": "support", "name": "one"}, format="json")
    eng.post("/api/v1/prompts/", {"team": "support", "name": "two"}, format="json")
    api_as(world.fin_eng).post("/api/v1/prompts/", {"team": "finance", "name": "three"}, format="json")
    gov = api_as(world.gov)

    def events(query: str) -> list[dict]:
        response = gov.get(f"/api/v1/audit/{query}")
        assert response.status_code == 200, response.content
        return response.json()["results"]

    created = events("?action=catalog.prompt_created")
    assert [e["target_repr"] for e in created] == ["support/two", "support/one"]  # newest first
    assert {e["team"] for e in events("")} == {"support"}  # finance is not gov's
    assert events("?actor=fin_eng") == []
    assert len(events("?action=catalog.")) == 2
    first = created[1]
    assert [e["sequence"] for e in events(f"?target_type=catalog.prompt&target_id={first['target_id']}")] == [
        first["sequence"]
    ]
    assert events(f"?since={created[0]['occurred_at'].replace('+', '%2B')}") == [created[0]]
    assert (
        events(f"?until={created[0]['occurred_at'].replace('+', '%2B')}")[0]["sequence"] == first["sequence"]
    )
    assert set(created[0]) >= {"actor", "context", "changes", "hash", "prev_hash"}
    assert created[0]["actor"] == "eng" and created[0]["context"]["method"] == "POST"


def test_audit_verify_names_the_first_broken_event(world, api_as):
    api_as(world.eng).post("/api/v1/prompts/", {"team": "support", "name": "one"}, format="json")
    event = AuditEvent.objects.get(action="catalog.prompt_created")
    AuditEvent.objects.filter(pk=event.pk).update(target_repr="support/forged")
    response = api_as(world.admin).get("/api/v1/audit/verify")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    assert body["first_broken_sequence"] == event.sequence
    assert "modified" in body["reason"]


def test_tokens_create_list_revoke(world, api_as):
    eng = api_as(world.eng)
    response = eng.post(
        "/api/v1/tokens/",
        {"name": "support-bot", "team": "support", "scopes": ["prompts:read", "logs:write"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    plaintext = created.pop("token")
    assert plaintext.startswith("atl_") and created["display"].startswith(plaintext[:16])
    assert created["scopes"] == ["logs:write", "prompts:read"] and created["active"] is True
    assert ApiToken.objects.get(pk=created["id"]).token_hash != plaintext

    listed = eng.get("/api/v1/tokens/").json()["results"]
    assert [t["id"] for t in listed] == [created["id"]]
    assert "token" not in listed[0] and not any("hash" in key for key in listed[0])
    assert plaintext not in eng.get("/api/v1/tokens/").content.decode()

    # The token works until it is revoked.
    app = api_as(token=plaintext)
    assert app.get("/api/v1/prompts/").status_code == 200
    assert eng.get("/api/v1/tokens/").json()["results"][0]["last_used_at"] is not None
    response = eng.delete(f"/api/v1/tokens/{created['id']}/")
    assert response.status_code == 200
    assert response.json()["revoked_at"] is not None and response.json()["active"] is False
    assert app.get("/api/v1/prompts/").status_code == 401

    # An administrator of the team sees and revokes the tokens of its members.
    other = make_token(world.eng2, world.support, "prompts:read")
    admin = api_as(world.admin)
    ids = [t["id"] for t in admin.get("/api/v1/tokens/").json()["results"]]
    mine = ApiToken.objects.get(user=world.eng2).pk
    assert mine in ids and created["id"] in ids
    assert admin.delete(f"/api/v1/tokens/{mine}/").status_code == 200
    assert api_as(token=other).get("/api/v1/prompts/").status_code == 401


def test_withdraw_returns_the_version_to_draft(world, api_as):
    eng = api_as(world.eng)
    eng.post("/api/v1/prompts/", {"team": "support", "name": "w"}, format="json")
    version = eng.post(
        "/api/v1/prompts/w/versions/", {"messages": MESSAGES, "model": "m"}, format="json"
    ).json()
    request_id = eng.post(f"/api/v1/prompt-versions/{version['id']}/submit/").json()["id"]
    response = eng.post(f"/api/v1/approvals/{request_id}/withdraw/")
    assert response.status_code == 200
    assert response.json()["status"] == "withdrawn"
    assert PromptVersion.objects.get(pk=version["id"]).status == "draft"
    # Editable again, and can be submitted again.
    assert (
        eng.patch(
            f"/api/v1/prompt-versions/{version['id']}/", {"message": "again"}, format="json"
        ).status_code
        == 200
    )
    assert eng.post(f"/api/v1/prompt-versions/{version['id']}/submit/").status_code == 201
