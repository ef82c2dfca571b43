"""Bad input on every write endpoint: a clear 4xx with the error format, and nothing written
(rows and audit events unchanged)."""

import io
import json

import pytest
from django.core.exceptions import RequestDataTooBig
from django.test import RequestFactory, override_settings

from apps.common.parsers import LimitedJSONParser
from tests.api.conftest import snapshot
from tests.api.endpoints import BY_NAME, ENDPOINTS
from tests.factories import make_prompt

# Who succeeds on each write endpoint with a good body (see the permission matrix).
WRITERS = {
    "prompts_create": "eng",
    "versions_create": "eng",
    "versions_update": "eng",
    "versions_submit": "eng",
    "approvals_decide": "gov",
    "approvals_withdraw": "eng",
    "labels_set": "eng",
    "labels_set_protected": "eng",
    "prompts_render": "eng",
    "tokens_create": "eng",
    "tokens_revoke": "admin",
}
WRITE_ENDPOINTS = [e for e in ENDPOINTS if e.name in WRITERS]
assert {e.name for e in ENDPOINTS if e.method != "get"} == set(WRITERS)

OVERSIZE = json.dumps({"padding": "x" * (1024 * 1024)})


def _send(api_as, scene, endpoint, raw: str, content_type: str = "application/json"):
    client = api_as(getattr(scene.world, WRITERS[endpoint.name]))
    return client.generic(endpoint.method.upper(), endpoint.url(scene, "own"), raw, content_type=content_type)


def _refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


def _good_body(scene, endpoint) -> dict:
    return endpoint.body(scene, "own") or {}


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=lambda e: e.name)
def test_malformed_json(endpoint, scene, api_as):
    before = snapshot()
    response = _send(api_as, scene, endpoint, '{"name": "oops",')
    _refused(response, 400, "malformed_request")
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=lambda e: e.name)
def test_oversize_body(endpoint, scene, api_as):
    before = snapshot()
    response = _send(api_as, scene, endpoint, OVERSIZE)
    error = _refused(response, 413, "request_too_large")
    assert error["details"] == {"limit_bytes": 1024 * 1024}
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=lambda e: e.name)
def test_unknown_fields(endpoint, scene, api_as):
    before = snapshot()
    body = {**_good_body(scene, endpoint), "surprise": 1, "also_unknown": "x"}
    response = _send(api_as, scene, endpoint, json.dumps(body))
    error = _refused(response, 400, "unknown_fields")
    assert error["details"]["unknown"] == ["also_unknown", "surprise"]
    assert "also_unknown" in error["message"] and "surprise" in error["message"]
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=lambda e: e.name)
def test_a_body_that_is_not_an_object(endpoint, scene, api_as):
    before = snapshot()
    response = _send(api_as, scene, endpoint, "[1, 2, 3]")
    _refused(response, 400, "invalid")
    assert snapshot() == before


@pytest.mark.parametrize("endpoint", WRITE_ENDPOINTS, ids=lambda e: e.name)
def test_a_form_body_is_not_json(endpoint, scene, api_as):
    before = snapshot()
    response = _send(api_as, scene, endpoint, "a=1", content_type="application/x-www-form-urlencoded")
    _refused(response, 415, "unsupported_media_type")
    assert snapshot() == before


def test_the_parser_refuses_an_oversize_body_before_reading_it():
    """Whatever the DRF version does before the parser, the parser itself enforces the limit."""
    request = RequestFactory().post("/", data="{}", content_type="application/json")
    request.META["CONTENT_LENGTH"] = str(1024 * 1024 + 1)
    with pytest.raises(RequestDataTooBig):
        LimitedJSONParser().parse(io.BytesIO(b"{}"), "application/json", {"request": request})
    request.META["CONTENT_LENGTH"] = "2"
    assert LimitedJSONParser().parse(io.BytesIO(b"{}"), "application/json", {"request": request}) == {}


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_the_limit_comes_from_the_settings(scene, api_as):
    before = snapshot()
    response = api_as(scene.world.eng).post(
        "/api/v1/prompts/", {"team": "support", "name": "n", "description": "d" * 200}, format="json"
    )
    _refused(response, 413, "request_too_large")
    assert snapshot() == before


# Unknown fields at depth, wrong types, bad query strings


def test_unknown_field_inside_a_message(scene, api_as):
    before = snapshot()
    body = {"messages": [{"role": "user", "template": "Hi", "weight": 2}], "model": "m"}
    response = api_as(scene.world.eng).post("/api/v1/prompts/greeting/versions/", body, format="json")
    error = _refused(response, 400, "unknown_fields")
    assert error["details"]["unknown"] == ["messages[0].weight"]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/prompts/greeting/labels/staging/", {"version": "one"}, "version"),
        ("/api/v1/prompts/greeting/labels/staging/", {}, "version"),
        ("/api/v1/prompts/greeting/versions/", {"messages": "Hi", "model": "m"}, "messages"),
        (
            "/api/v1/prompts/greeting/versions/",
            {"messages": [{"role": "robot", "template": "x"}]},
            "messages",
        ),
        (
            "/api/v1/prompts/greeting/versions/",
            {"messages": [], "model": "m", "parameters": [1]},
            "parameters",
        ),
        ("/api/v1/prompts/", {"team": "support"}, "name"),
        ("/api/v1/prompts/", {"team": "support", "name": "n", "tags": "a,b"}, "tags"),
    ],
)
def test_wrong_types_are_400_naming_the_field(url, body, field, scene, api_as):
    before = snapshot()
    client = api_as(scene.world.eng)
    response = (
        client.put(url, body, format="json") if "labels" in url else client.post(url, body, format="json")
    )
    error = _refused(response, 400, "invalid")
    assert field in error["details"]["fields"], error
    assert snapshot() == before


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/prompts/?colour=red",
        "/api/v1/approvals/?stauts=open",
        "/api/v1/audit/?who=gov",
        "/api/v1/prompts/greeting/?tema=support",
        "/api/v1/tokens/?all=1",
    ],
)
def test_unknown_query_parameters_are_refused(url, scene, api_as):
    response = api_as(scene.world.admin).get(url)
    _refused(response, 400, "unknown_fields")


@pytest.mark.parametrize(
    "url",
    ["/api/v1/prompts/?status=shipped", "/api/v1/approvals/?status=maybe", "/api/v1/audit/?since=yesterday"],
)
def test_invalid_filters_are_400(url, scene, api_as):
    _refused(api_as(scene.world.gov).get(url), 400, "invalid")


def test_pagination_parameters_are_accepted(scene, api_as):
    response = api_as(scene.world.gov).get("/api/v1/audit/?page_size=2")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2
    following = api_as(scene.world.gov).get(response.json()["next"])
    assert following.status_code == 200
    first = [e["sequence"] for e in response.json()["results"]]
    second = [e["sequence"] for e in following.json()["results"]]
    assert first == sorted(first, reverse=True) and second and max(second) < min(first)


# Templates and variables


BROKEN = [
    {"role": "system", "template": "You help {{ company }}."},
    {"role": "user", "template": "First line\n{{ question "},
]


@pytest.mark.parametrize("endpoint_name", ["versions_create", "versions_update"])
def test_invalid_template_is_422_with_its_position(endpoint_name, scene, api_as):
    endpoint = BY_NAME[endpoint_name]
    before = snapshot()
    response = _send(api_as, scene, endpoint, json.dumps({"messages": BROKEN, "model": "gemini-2.5-flash"}))
    error = _refused(response, 422, "template_syntax_error")
    assert error["details"]["message_index"] == 1
    assert error["details"]["line"] == 2
    assert snapshot() == before


@pytest.mark.parametrize(
    "template", ["{{ user.password }}", "{{ items[0] }}", "{{ run() }}", "{% include 'x' %}"]
)
def test_templates_cannot_reach_attributes_items_or_code(template, scene, api_as):
    before = snapshot()
    body = {"messages": [{"role": "user", "template": template}], "model": "m"}
    response = api_as(scene.world.eng).post("/api/v1/prompts/greeting/versions/", body, format="json")
    error = _refused(response, 422, "template_syntax_error")
    assert error["details"]["message_index"] == 0
    assert snapshot() == before


@pytest.mark.parametrize(
    ("variables", "missing", "unknown"),
    [
        ({"company": "ACME"}, ["question"], []),
        ({"company": "ACME", "question": "q", "tone": "warm"}, [], ["tone"]),
        ({}, ["company", "question"], []),
    ],
)
def test_render_names_missing_and_unknown_variables(variables, missing, unknown, scene, api_as):
    before = snapshot()
    response = api_as(scene.world.eng).post(
        "/api/v1/prompts/greeting/render", {"version": 1, "variables": variables}, format="json"
    )
    error = _refused(response, 422, "invalid_variables")
    assert error["details"] == {"missing": missing, "unknown": unknown}
    for name in missing + unknown:
        assert name in error["message"]
    assert snapshot() == before


@pytest.mark.parametrize("body", [{"variables": {}}, {"version": 1, "label": "production", "variables": {}}])
def test_render_needs_exactly_one_of_version_and_label(body, scene, api_as):
    response = api_as(scene.world.eng).post("/api/v1/prompts/greeting/render", body, format="json")
    _refused(response, 400, "invalid")


def test_render_of_a_missing_label_or_version_is_404(scene, api_as):
    client = api_as(scene.world.eng)
    body = {"label": "canary", "variables": {}}
    _refused(client.post("/api/v1/prompts/greeting/render", body, format="json"), 404, "label_not_found")
    body = {"version": 99, "variables": {}}
    _refused(client.post("/api/v1/prompts/greeting/render", body, format="json"), 404, "not_found")


# State and conflicts


def test_a_submitted_version_is_frozen(scene, api_as):
    approved = scene.support_versions[0]
    before = snapshot()
    response = api_as(scene.world.eng).patch(
        f"/api/v1/prompt-versions/{approved.pk}/", {"model": "x"}, format="json"
    )
    _refused(response, 409, "version_frozen")
    response = api_as(scene.world.eng).post(f"/api/v1/prompt-versions/{approved.pk}/submit/")
    assert response.status_code == 409
    assert snapshot() == before


def test_labels_point_at_approved_versions_only(scene, api_as):
    before = snapshot()
    client = api_as(scene.world.eng)
    response = client.put("/api/v1/prompts/greeting/labels/staging/", {"version": 2}, format="json")
    _refused(response, 409, "version_not_approved")
    response = client.put("/api/v1/prompts/greeting/labels/staging/", {"version": 42}, format="json")
    _refused(response, 404, "not_found")
    response = client.put("/api/v1/prompts/greeting/labels/Not-A-Label/", {"version": 1}, format="json")
    _refused(response, 422, "invalid_label")
    assert snapshot() == before


def test_an_ambiguous_name_is_409_until_the_team_is_given(scene, api_as):
    make_prompt(scene.world.finance, scene.world.fin_eng, name="greeting")
    client = api_as(scene.world.eng2)  # engineer in both teams
    before = snapshot()
    error = _refused(client.get("/api/v1/prompts/greeting/"), 409, "ambiguous_name")
    assert error["details"] == {"teams": ["finance", "support"]}
    body = {"version": 1, "variables": {"company": "a", "question": "b"}}
    _refused(client.post("/api/v1/prompts/greeting/render", body, format="json"), 409, "ambiguous_name")
    assert client.get("/api/v1/prompts/greeting/?team=finance").json()["team"] == "finance"
    assert client.get("/api/v1/prompts/greeting/?team=support").json()["team"] == "support"
    assert snapshot() == before


def test_duplicate_and_invalid_prompt_names(scene, api_as):
    client = api_as(scene.world.eng)
    before = snapshot()
    body = {"team": "support", "name": "greeting"}
    _refused(client.post("/api/v1/prompts/", body, format="json"), 409, "prompt_exists")
    body = {"team": "support", "name": "Has Spaces"}
    _refused(client.post("/api/v1/prompts/", body, format="json"), 422, "invalid_name")
    error = _refused(client.post("/api/v1/prompts/", {"name": "no-team"}, format="json"), 400, "invalid")
    assert "team" in error["details"]["fields"]
    assert snapshot() == before


def test_decisions_are_validated_and_a_closed_request_is_409(scene, api_as):
    url = f"/api/v1/approvals/{scene.support_decide_request.pk}/decisions/"
    gov = api_as(scene.world.gov)
    before = snapshot()
    _refused(gov.post(url, {"decision": "maybe"}, format="json"), 400, "invalid")
    _refused(gov.post(url, {"comment": "no decision"}, format="json"), 400, "invalid")
    assert snapshot() == before
    assert gov.post(url, {"decision": "reject", "comment": "no"}, format="json").status_code == 201
    after_reject = snapshot()
    _refused(
        api_as(scene.world.gov2).post(url, {"decision": "approve"}, format="json"), 409, "request_closed"
    )
    assert snapshot() == after_reject


def test_withdrawing_twice_is_409(scene, api_as):
    url = f"/api/v1/approvals/{scene.support_withdraw_request.pk}/withdraw/"
    client = api_as(scene.world.eng)
    assert client.post(url).status_code == 200
    before = snapshot()
    _refused(client.post(url), 409, "request_closed")
    assert snapshot() == before


def test_token_creation_is_validated(scene, api_as):
    client = api_as(scene.world.eng)
    before = snapshot()
    body = {"name": "ci", "team": "support", "scopes": ["prompts:everything"]}
    _refused(client.post("/api/v1/tokens/", body, format="json"), 400, "invalid")
    body = {"name": "ci", "team": "support", "scopes": []}
    _refused(client.post("/api/v1/tokens/", body, format="json"), 400, "invalid")
    body = {"name": "ci", "team": "support", "scopes": ["all"], "expires_at": "2001-01-01T00:00:00Z"}
    _refused(client.post("/api/v1/tokens/", body, format="json"), 422, "invalid_expiry")
    assert snapshot() == before


def test_revoking_twice_is_409(scene, api_as):
    client = api_as(scene.world.admin)
    url = f"/api/v1/tokens/{scene.support_token.pk}/"
    assert client.delete(url).status_code == 200
    before = snapshot()
    _refused(client.delete(url), 409, "already_revoked")
    assert snapshot() == before
