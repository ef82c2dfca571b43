import json

import pytest

from apps.logs.models import LogEvent
from apps.logs.services import log_events_scan
from tests.factories import make_token
from tests.logs.conftest import event


@pytest.fixture
def stored(world, api_as, scanner):
    def send(team, user, *events):
        client = api_as(token=make_token(user, team, "logs:write"))
        client.post(
            "/api/v1/logs/batch", data=json.dumps({"events": list(events)}), content_type="application/json"
        )

    send(
        world.support,
        world.eng,
        event("s1"),
        event(
            "s2",
            model="gemini-2.5-pro",
            input=[{"role": "user", "content": "nothing personal here"}],
            output="fine",
            metadata={},
        ),
    )
    send(world.finance, world.fin_eng, event("f1"))
    send(world.support, world.eng, event("pending"))
    log_events_scan(
        event_ids=list(LogEvent.objects.exclude(request_id="pending").values_list("pk", flat=True))
    )


def ids(response):
    assert response.status_code == 200, response.content
    return sorted(r["request_id"] for r in response.json()["results"])


def test_engineers_and_governance_read_redacted_logs_of_their_teams(world, api_as, stored):
    for username in ("eng", "gov", "admin"):
        body = api_as(world.users[username]).get("/api/v1/logs/")
        assert ids(body) == ["s1", "s2"]  # not finance's, not the one still staged
    first = api_as(world.eng).get("/api/v1/logs/?search=order%20is%20late").json()["results"][0]
    assert first["input"][1]["content"] == "I am [EMAIL_ADDRESS], my order is late"
    assert "ana.garcia" not in json.dumps(first)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("has_pii=true", ["s1"]),
        ("has_pii=false", ["s2"]),
        ("info_type=EMAIL_ADDRESS", ["s1"]),
        ("model=gemini-2.5-pro", ["s2"]),
        ("search=ANA.GARCIA", []),  # raw values are not searchable: they are not stored
        ("search=%5Bemail_address%5D", ["s1"]),
        ("team=support&prompt_version=1", ["s1", "s2"]),
    ],
)
def test_filters(world, api_as, stored, query, expected):
    assert ids(api_as(world.eng).get(f"/api/v1/logs/?{query}")) == expected


def test_product_owners_annotators_and_outsiders_read_no_text(world, api_as, stored):
    assert api_as(world.owner).get("/api/v1/logs/").status_code == 403
    assert api_as(world.ann1).get("/api/v1/logs/").status_code == 403
    assert ids(api_as(world.fin_eng).get("/api/v1/logs/")) == ["f1"]
    s1 = LogEvent.objects.get(request_id="s1")
    assert api_as(world.fin_eng).get(f"/api/v1/logs/{s1.pk}/").status_code == 404
    assert api_as(world.eng).get("/api/v1/logs/?team=finance").status_code == 404


def test_event_detail_has_findings(world, api_as, stored):
    s1 = LogEvent.objects.get(request_id="s1")
    body = api_as(world.gov).get(f"/api/v1/logs/{s1.pk}/").json()
    assert body["findings"] == [{"info_type": "EMAIL_ADDRESS", "count": 3, "likelihood": "VERY_LIKELY"}]
    pending = LogEvent.objects.get(request_id="pending")
    assert api_as(world.gov).get(f"/api/v1/logs/{pending.pk}/").status_code == 404  # not scanned yet


def test_token_scope_and_unknown_filters(world, api_as, stored):
    reader = api_as(token=make_token(world.eng, world.support, "logs:read"))
    assert ids(reader.get("/api/v1/logs/")) == ["s1", "s2"]
    writer = api_as(token=make_token(world.eng, world.support, "logs:write"))
    assert writer.get("/api/v1/logs/").status_code == 403
    assert reader.get("/api/v1/logs/?colour=red").status_code == 400
