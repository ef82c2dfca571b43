"""API rate limits (apps/common/ratelimit.py): per token, per session user, writes apart, on DRF's views
and on the resolve fast path. Time is the counter's clock, patched: no test sleeps."""

import pytest

from apps.common import ratelimit
from apps.common.ratelimit import Rate, rate_parse
from tests.factories import make_approved, make_prompt, make_token, put_on_label

LIST = "/api/v1/prompts/"
RESOLVE = "/api/v1/prompts/greeting/resolve?label=production"
WINDOW_START = 100 * 60.0  # a minute window starts here (windows are multiples of their length)


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(WINDOW_START + 15.2)
    monkeypatch.setattr(ratelimit, "clock", clock)
    return clock


@pytest.fixture
def limits(settings):
    settings.API_RATE_LIMIT = "3/min"
    settings.API_WRITE_RATE_LIMIT = "2/min"
    return settings


@pytest.fixture
def published(world):
    prompt = make_prompt(world.support, world.eng)
    version = make_approved(prompt, world.eng, world.gov)
    put_on_label(prompt, version, "production", world.gov)
    return prompt


def _assert_limited(response, *, limit: int, retry_after: int, who: str, applies_to: str = "requests"):
    assert response.status_code == 429, response.content
    assert response["Retry-After"] == str(retry_after)
    error = response.json()["error"]
    assert error["code"] == "rate_limited"
    seconds = "second" if retry_after == 1 else "seconds"
    assert f"for this {who}" in error["message"]
    assert f"Try again in {retry_after} {seconds}." in error["message"]
    assert error["details"] == {
        "limit": limit,
        "window_seconds": 60,
        "retry_after": retry_after,
        "applies_to": applies_to,
    }


def test_a_token_over_its_limit_gets_429_with_retry_after_until_the_window_ends(world, limits, clock, api_as):
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    for _ in range(3):
        assert client.get(LIST).status_code == 200
    # 15.2 s into the minute: the window ends in 44.8 s, so Retry-After is 45 (whole seconds, rounded up).
    _assert_limited(client.get(LIST), limit=3, retry_after=45, who="token")
    clock.now = WINDOW_START + 59.5
    _assert_limited(client.get(LIST), limit=3, retry_after=1, who="token")
    clock.now = WINDOW_START + 60  # the next window
    assert client.get(LIST).status_code == 200


def test_other_tokens_and_users_are_not_affected(world, limits, clock, api_as):
    limited = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    for _ in range(4):
        limited.get(LIST)
    assert limited.get(LIST).status_code == 429
    # The same user's other token, another user's token, and the user's own browser session each have
    # their own counter.
    assert api_as(token=make_token(world.eng, world.support, "prompts:read")).get(LIST).status_code == 200
    assert api_as(token=make_token(world.gov, world.support, "prompts:read")).get(LIST).status_code == 200
    assert api_as(world.eng).get(LIST).status_code == 200


def test_session_users_are_limited_by_user(world, limits, clock, api_as):
    for _ in range(3):
        assert api_as(world.eng).get(LIST).status_code == 200  # a new client each time: same user
    _assert_limited(api_as(world.eng).get(LIST), limit=3, retry_after=45, who="user")
    assert api_as(world.gov).get(LIST).status_code == 200


def test_the_resolve_fast_path_is_limited_without_touching_the_database(
    world, limits, clock, api_as, published, django_assert_num_queries
):
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    for _ in range(3):
        assert client.get(RESOLVE, HTTP_ACCEPT="*/*").status_code == 200
    with django_assert_num_queries(0):  # answered from memory, before DRF: no token lookup
        refused = client.get(RESOLVE, HTTP_ACCEPT="*/*")
    _assert_limited(refused, limit=3, retry_after=45, who="token")
    # The same through DRF (an Accept header the fast path leaves to DRF): the same answer.
    _assert_limited(
        client.get(RESOLVE, HTTP_ACCEPT="application/json; q=0.9"), limit=3, retry_after=45, who="token"
    )
    clock.now = WINDOW_START + 60
    assert client.get(RESOLVE, HTTP_ACCEPT="*/*").status_code == 200


def test_resolve_and_other_calls_share_the_token_counter_and_count_once(
    world, limits, clock, api_as, published
):
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    # A label that does not exist: the fast path hands the request to DRF, which answers 404. Counted
    # once, not once per path.
    assert client.get(RESOLVE.replace("production", "canary")).status_code == 404
    assert client.get(RESOLVE).status_code == 200
    assert client.get(LIST).status_code == 200
    _assert_limited(client.get(RESOLVE), limit=3, retry_after=45, who="token")


def test_writes_have_their_own_lower_limit(world, limits, clock, api_as, published):
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    render = "/api/v1/prompts/greeting/render"
    for _ in range(2):  # let through the limiter (the template's variables are missing: 422)
        assert client.post(render, {"label": "production"}, format="json").status_code == 422
    _assert_limited(
        client.post(render, {"label": "production"}, format="json"),
        limit=2,
        retry_after=45,
        who="token",
        applies_to="writes",
    )
    # The refused write counted as a request (3 of 3): reads are now over their own limit too.
    _assert_limited(client.get(LIST), limit=3, retry_after=45, who="token")


def test_unauthenticated_requests_are_refused_before_any_counting(world, limits, clock, api):
    for _ in range(5):
        assert api.get(LIST).status_code == 401


def test_rates_are_read_from_their_text():
    assert rate_parse("6000/min") == Rate(6000, 60)
    assert rate_parse("100/s") == Rate(100, 1)
    assert rate_parse("20/15min") == Rate(20, 900)
    assert rate_parse("1000/hour") == Rate(1000, 3600)
    assert rate_parse("off") is None and rate_parse("") is None
    with pytest.raises(ValueError, match="N/unit"):
        rate_parse("lots")
    with pytest.raises(ValueError, match="N/unit"):
        rate_parse("10/fortnight")


def test_no_limit_when_set_off(world, settings, clock, api_as):
    settings.API_RATE_LIMIT = "off"
    client = api_as(token=make_token(world.eng, world.support, "prompts:read"))
    for _ in range(5):
        assert client.get(LIST).status_code == 200
