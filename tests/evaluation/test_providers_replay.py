"""The replay provider (recorded responses keyed by the rendered request) and the request key it uses."""

import hashlib
import json
import threading

import pytest
from django.core.exceptions import ImproperlyConfigured

from apps.evaluation.providers import (
    ModelRequest,
    ModelResponse,
    ProviderError,
    build_provider,
    get_provider,
    run_requests,
)
from apps.evaluation.providers.replay import ReplayProvider, recordings

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Capital of Spain?"},
]
RECORDED = ModelResponse(text="Madrid.", tokens_in=7, tokens_out=2, latency_ms=840, model="gemini-2.5-flash")


def request(**changes):
    values = {
        "model": "gemini-2.5-flash",
        "messages": MESSAGES,
        "parameters": {"temperature": 0.2, "seed": 1},
    }
    values.update(changes)
    return ModelRequest(**values)


# -- the key --------------------------------------------------------------------------------------------


def test_the_same_request_always_has_the_same_key():
    first = request()
    same = ModelRequest(
        "gemini-2.5-flash",
        [dict(m) for m in MESSAGES],
        {"seed": 1, "temperature": 0.2},  # another order of the same parameters
    )

    assert first.key() == same.key()
    assert len(first.key()) == 64 and int(first.key(), 16) >= 0


def test_the_key_is_the_sha256_of_the_canonical_json():
    canonical = json.dumps(
        {"model": "m", "messages": [{"content": "hi", "role": "user"}], "parameters": {}},
        sort_keys=True,
        separators=(",", ":"),
    )
    request = ModelRequest("m", [{"role": "user", "content": "hi"}], {})

    assert request.key() == hashlib.sha256(canonical.encode()).hexdigest()


@pytest.mark.parametrize(
    "changes",
    [
        {"parameters": {"temperature": 0.3, "seed": 1}},
        {"parameters": {"temperature": 0.2}},
        {"model": "gemini-2.5-pro"},
        {"messages": [MESSAGES[0], {"role": "user", "content": "Capital of Spain? "}]},
        {"messages": [{"role": "user", "content": "You are terse."}, MESSAGES[1]]},
    ],
)
def test_any_change_to_the_request_changes_the_key(changes):
    assert request(**changes).key() != request().key()


# -- the provider ---------------------------------------------------------------------------------------


def test_a_recorded_request_is_answered_from_its_recording():
    provider = ReplayProvider(recordings({request().key(): RECORDED}))

    assert provider.generate(request()) == RECORDED
    assert provider.is_replay is True and provider.kind == "replay"


def test_a_request_with_no_recording_fails_naming_its_key_and_is_not_retried():
    looked_up = []

    def lookup(key):
        looked_up.append(key)
        return None

    provider = ReplayProvider(lookup)
    [outcome] = run_requests(provider, [request(model="gemini-2.5-pro")], max_attempts=5)

    key = request(model="gemini-2.5-pro").key()
    assert not outcome.ok
    assert outcome.error.message == f"no recorded response for this request (key {key})"
    assert outcome.error.retryable is False
    assert outcome.attempts == 1 and looked_up == [key]


def test_a_run_mixes_hits_and_misses_in_the_callers_thread():
    provider = ReplayProvider(recordings({request().key(): RECORDED}))
    threads = set()

    def lookup_thread(outcome):
        threads.add(threading.get_ident())

    outcomes = run_requests(provider, [request(), request(model="other"), request()], on_result=lookup_thread)

    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[0].response.text == "Madrid."
    assert threads == {threading.get_ident()}


def test_a_failing_lookup_fails_the_case_with_its_reason():
    def broken(key):
        raise OSError("database is locked")

    with pytest.raises(
        ProviderError, match=r"recorded responses could not be read .*OSError: database is locked"
    ) as e:
        ReplayProvider(broken).generate(request())

    assert e.value.retryable is False


def lookup_for_settings(key):
    """What EVALUATION_REPLAY_LOOKUP names in the test below."""
    return RECORDED if key == request().key() else None


def test_get_provider_builds_replay_from_the_lookup_setting(settings):
    settings.EVALUATION_REPLAY_LOOKUP = "tests.evaluation.test_providers_replay.lookup_for_settings"
    get_provider.cache_clear()
    try:
        provider = get_provider("replay")
        assert provider.is_replay
        assert provider.generate(request()).text == "Madrid."
    finally:
        get_provider.cache_clear()


def test_replay_without_a_lookup_setting_is_not_configured(settings):
    settings.EVALUATION_REPLAY_LOOKUP = ""

    with pytest.raises(ImproperlyConfigured, match="EVALUATION_REPLAY_LOOKUP"):
        build_provider("replay")
