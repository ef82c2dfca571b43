from tests.factories import make_approved, make_prompt, make_token, put_on_label


def test_resolve_with_token_etag_and_304(world, api_as):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, version, "production", world.gov)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    response = client.get("/api/v1/prompts/greeting/resolve?label=production")
    assert response.status_code == 200, response.content
    assert response.json()["version"] == 1
    assert response["ETag"] == version.etag
    again = client.get("/api/v1/prompts/greeting/resolve?label=production", HTTP_IF_NONE_MATCH=version.etag)
    assert again.status_code == 304
    assert again.content == b""


# The token path answers from short-lived per-process snapshots (apps/catalog/api_resolve.py): it must
# give what DRF gives, and see revocations, membership changes and label moves at once in this process.

URL = "/api/v1/prompts/greeting/resolve?label=production"


def _published(world, **kwargs):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov, **kwargs)
    put_on_label(prompt, version, "production", world.gov)
    return prompt, version


def test_fast_path_answers_as_drf_does(world, api_as):
    _published(world)
    token = make_token(world.eng, world.support, "prompts:read")
    fast = api_as(token=token).get(URL, HTTP_ACCEPT="*/*")
    via_drf = api_as(token=token).get(URL, HTTP_ACCEPT="application/json; q=0.9")
    session = api_as(world.eng).get(URL)
    assert fast.status_code == via_drf.status_code == session.status_code == 200
    assert fast.content == via_drf.content == session.content
    for header in ("Content-Type", "ETag", "Cache-Control", "Allow", "X-Content-Type-Options"):
        assert fast[header] == session[header], header
    not_modified = api_as(token=token).get(URL, HTTP_IF_NONE_MATCH=fast["ETag"])
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not not_modified.has_header("Content-Type")


def test_refusals_keep_the_error_format(world, api_as):
    _published(world)
    cases = [
        (make_token(world.eng, world.support, "logs:read"), URL, 403, "missing_scope"),
        (make_token(world.fin_eng, world.finance, "prompts:read"), URL, 404, "not_found"),
        (
            make_token(world.eng, world.support, "prompts:read"),
            URL.replace("production", "canary"),
            404,
            None,
        ),
        ("atl_nothing_here", URL, 401, "authentication_failed"),
    ]
    for token, url, status, code in cases:
        response = api_as(token=token).get(url)
        assert response.status_code == status, (token, response.content)
        error = response.json()["error"]
        assert error["code"] == (code or "label_not_found")


def test_revoked_token_stops_at_once(world, api_as):
    from apps.accounts.models import ApiToken
    from apps.accounts.services import token_revoke

    _published(world)
    token = make_token(world.eng, world.support, "prompts:read")
    client = api_as(token=token)
    assert client.get(URL).status_code == 200
    token_revoke(actor=world.eng, token_id=ApiToken.objects.get(user=world.eng).pk)
    response = client.get(URL)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


def test_removed_membership_stops_at_once(world, api_as):
    from apps.accounts.models import Membership

    _published(world)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    assert client.get(URL).status_code == 200
    Membership.objects.get(user=world.eng, team=world.support).delete()
    assert client.get(URL).status_code in (401, 404)


def test_moved_label_is_seen_at_once(world, api_as):
    prompt, _ = _published(world)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    assert client.get(URL).json()["version"] == 1
    v2 = make_approved(prompt, world.eng, world.gov, parameters={"temperature": 0.9})
    put_on_label(prompt, v2, "production", world.gov)
    response = client.get(URL)
    assert response.json()["version"] == 2 and response["ETag"] == v2.etag


def test_changes_without_signals_are_seen_within_seconds(world, api_as, monkeypatch):
    """QuerySet.update() sends no signal: the snapshots' few seconds are the bound (other processes too)."""
    import time

    from django.utils import timezone

    from apps.accounts.authentication import TOKEN_CACHE_SECONDS
    from apps.accounts.models import ApiToken
    from apps.catalog.api_resolve import RESOLVE_CACHE_SECONDS

    assert TOKEN_CACHE_SECONDS <= 5 and RESOLVE_CACHE_SECONDS <= 5
    _published(world)
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    assert client.get(URL).status_code == 200
    ApiToken.objects.filter(user=world.eng).update(revoked_at=timezone.now())
    later = time.monotonic() + max(TOKEN_CACHE_SECONDS, RESOLVE_CACHE_SECONDS) + 0.1
    monkeypatch.setattr(time, "monotonic", lambda: later)
    assert client.get(URL).status_code == 401
