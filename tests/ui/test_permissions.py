"""The role matrix: every page, for every kind of user — the right ones see it, the others get
302 to sign-in (anonymous), 404 (another team, or a team whose catalog they do not read) or 403
(a role that does not allow the page)."""

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.catalog.models import LabelMove, PromptLabel, VersionStatus
from apps.workflows.models import ApprovalDecision

USERS = ["anon", "admin", "gov", "eng", "owner", "ann1", "fin_eng"]


def _url(name, catalog, **extra):
    prompt = catalog.prompt
    kwargs = {
        "catalog:prompt": {"team": "support", "name": prompt.name},
        "catalog:prompt_edit": {"team": "support", "name": prompt.name},
        "catalog:version_create": {"team": "support", "name": prompt.name},
        "catalog:version": {"team": "support", "name": prompt.name, "number": catalog.in_review.number},
        "catalog:version_edit": {"team": "support", "name": prompt.name, "number": catalog.draft.number},
        "workflows:request": {"request_id": catalog.request.pk},
    }.get(name, {})
    return reverse(name, kwargs=kwargs)


# page → expected status per user (anon always 302 to the sign-in page)
PAGES = {
    "catalog:list": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    "catalog:prompt_create": {
        "admin": 200,
        "gov": 403,
        "eng": 200,
        "owner": 403,
        "ann1": 403,
        "fin_eng": 200,
    },
    "catalog:prompt": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    "catalog:prompt_edit": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 404, "fin_eng": 404},
    "catalog:version_create": {
        "admin": 200,
        "gov": 403,
        "eng": 200,
        "owner": 403,
        "ann1": 404,
        "fin_eng": 404,
    },
    "catalog:version": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    "catalog:version_edit": {"admin": 200, "gov": 403, "eng": 200, "owner": 403, "ann1": 404, "fin_eng": 404},
    "workflows:queue": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 403, "fin_eng": 200},
    "workflows:request": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 404, "fin_eng": 404},
    "audit:list": {"admin": 200, "gov": 200, "eng": 403, "owner": 403, "ann1": 403, "fin_eng": 403},
    "audit:export_csv": {"admin": 200, "gov": 200, "eng": 403, "owner": 403, "ann1": 403, "fin_eng": 403},
    "audit:export_jsonl": {"admin": 200, "gov": 200, "eng": 403, "owner": 403, "ann1": 403, "fin_eng": 403},
    "accounts:tokens": {"admin": 200, "gov": 200, "eng": 200, "owner": 200, "ann1": 200, "fin_eng": 200},
}


@pytest.mark.parametrize("page", list(PAGES))
def test_page_matrix(page, world, catalog, client_as):
    url = _url(page, catalog)
    for username in USERS:
        client = client_as(None if username == "anon" else getattr(world, username))
        response = client.get(url)
        if username == "anon":
            assert response.status_code == 302, (page, username)
            assert response["Location"].startswith(reverse("accounts:login")), page
            continue
        assert response.status_code == PAGES[page][username], (page, username, response.status_code)


def test_home_sends_each_user_where_they_can_work(world, client_as):
    assert client_as(world.eng).get("/")["Location"] == reverse("catalog:list")
    assert client_as(world.ann1).get("/")["Location"] == reverse("feedback:index")


def test_sign_in_page_is_public(client_as):
    response = client_as(None).get(reverse("accounts:login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content


def _snapshot(catalog):
    catalog.draft.refresh_from_db()
    return (
        AuditEvent.objects.count(),
        catalog.draft.status,
        ApprovalDecision.objects.count(),
        LabelMove.objects.count(),
        list(PromptLabel.objects.values_list("name", "version_id")),
    )


WRITES = {
    # (url name, kwargs builder, data) → expected status per user
    "submit": (
        "catalog:version_submit",
        lambda c: {"team": "support", "name": c.prompt.name, "number": c.draft.number},
        {},
        {"gov": 403, "owner": 403, "ann1": 404, "fin_eng": 404},
    ),
    "retire": (
        "catalog:version_retire",
        lambda c: {"team": "support", "name": c.prompt.name, "number": c.approved.number},
        {},
        {"eng": 403, "owner": 403, "admin": 403, "ann1": 404, "fin_eng": 404},
    ),
    "label": (
        "catalog:label_set",
        lambda c: {"team": "support", "name": c.prompt.name},
        {"label": "staging", "version": "1"},
        {"owner": 403, "ann1": 404, "fin_eng": 404},
    ),
    "decide": (
        "workflows:decide",
        lambda c: {"request_id": c.request.pk},
        {"decision": "approve", "comment": "ok"},
        {"eng": 403, "owner": 403, "admin": 403, "ann1": 404, "fin_eng": 404},
    ),
    "edit": (
        "catalog:version_edit",
        lambda c: {"team": "support", "name": c.prompt.name, "number": c.draft.number},
        {"role": ["user"], "template": ["Hi {{ name }}"], "model": "m", "parameters": "{}", "action": "save"},
        {"gov": 403, "owner": 403, "ann1": 404, "fin_eng": 404},
    ),
}


@pytest.mark.parametrize("write", list(WRITES))
def test_refused_writes_change_nothing(write, world, catalog, client_as):
    name, kwargs, data, refusals = WRITES[write]
    url = reverse(name, kwargs=kwargs(catalog))
    before = _snapshot(catalog)
    anonymous = client_as(None).post(url, data)
    assert anonymous.status_code == 302 and reverse("accounts:login") in anonymous["Location"]
    for username, status in refusals.items():
        response = client_as(getattr(world, username)).post(url, data)
        assert response.status_code == status, (write, username, response.status_code)
        assert _snapshot(catalog) == before, (write, username)


def test_writes_need_post(world, catalog, client_as):
    client = client_as(world.eng)
    url = reverse(
        "catalog:version_submit",
        kwargs={"team": "support", "name": catalog.prompt.name, "number": catalog.draft.number},
    )
    assert client.get(url).status_code == 405
    catalog.draft.refresh_from_db()
    assert catalog.draft.status == VersionStatus.DRAFT


def test_csrf_is_enforced(world, catalog):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(world.eng)
    url = reverse(
        "catalog:version_submit",
        kwargs={"team": "support", "name": catalog.prompt.name, "number": catalog.draft.number},
    )
    assert client.post(url).status_code == 403
    catalog.draft.refresh_from_db()
    assert catalog.draft.status == VersionStatus.DRAFT


def test_tokens_of_someone_else_are_not_found(world, client_as):
    from apps.accounts.models import ApiToken
    from tests.factories import make_token

    make_token(world.gov, world.support, "prompts:read")
    token = ApiToken.objects.get(user=world.gov)
    before = AuditEvent.objects.count()
    response = client_as(world.eng).post(reverse("accounts:token_revoke", args=[token.pk]))
    assert response.status_code == 404
    token.refresh_from_db()
    assert token.revoked_at is None
    assert AuditEvent.objects.count() == before
