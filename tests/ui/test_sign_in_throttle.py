"""Sign-in throttling on the password sign-in page: too many failures for a username or from an address
lock further attempts (429) without checking the password, until the lock ends; the lockout is audited.
Time is the counter's clock (apps.common.ratelimit.clock), patched: no test sleeps."""

import pytest
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.common import ratelimit

PASSWORD = "demo-password"  # tests.factories.UserFactory
LOGIN = "/accounts/login/"
START = 1000 * 900.0  # a 15-minute window starts here


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock(START + 100)
    monkeypatch.setattr(ratelimit, "clock", clock)
    return clock


@pytest.fixture
def limits(settings):
    settings.SIGN_IN_FAILURES_PER_USERNAME = 3
    settings.SIGN_IN_FAILURES_PER_IP = 5
    settings.SIGN_IN_WINDOW_SECONDS = 900
    return settings


def attempt(username: str, password: str, ip: str = "203.0.113.7", client: Client | None = None):
    return (client or Client()).post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=ip)


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == reverse("home")


def test_a_locked_out_username_is_refused_even_with_the_right_password_until_the_lock_ends(
    world, limits, clock
):
    for _ in range(2):
        response = attempt("eng", "wrong")
        assert response.status_code == 200
        assert b"Please enter a correct username and password" in response.content
    third = attempt("eng", "wrong")  # reaches the limit: refused as usual, and says so
    assert third.status_code == 200
    assert b"Too many failed sign-in attempts. Try again in 15 minutes." in third.content

    clock.now += 60
    refused = attempt("eng", PASSWORD)  # the right password, but the username is locked
    assert refused.status_code == 429
    assert refused["Retry-After"] == str(900 - 60)
    assert b"Too many failed sign-in attempts. Try again in 14 minutes." in refused.content
    assert b'value="eng"' in refused.content  # the form, ready for later
    assert "_auth_user_id" not in refused.wsgi_request.session

    clock.now += 900 - 60 - 1  # one second before the lock ends
    assert attempt("eng", PASSWORD).status_code == 429
    clock.now += 1
    assert signed_in(attempt("eng", PASSWORD))


def test_a_locked_attempt_checks_no_password(world, limits, clock, monkeypatch):
    for _ in range(3):
        attempt("eng", "wrong")
    checked = []
    from django.contrib.auth.backends import ModelBackend

    monkeypatch.setattr(ModelBackend, "authenticate", lambda *a, **k: checked.append(1))
    assert attempt("eng", PASSWORD).status_code == 429
    assert checked == []


def test_other_users_are_not_affected(world, limits, clock):
    for _ in range(3):
        attempt("eng", "wrong", ip="203.0.113.7")
    assert attempt("eng", PASSWORD, ip="198.51.100.2").status_code == 429  # the username, from anywhere
    assert signed_in(attempt("gov", PASSWORD, ip="203.0.113.7"))  # another user, from the same address
    assert signed_in(attempt("owner", PASSWORD, ip="198.51.100.2"))


def test_too_many_failures_from_one_address_lock_that_address(world, limits, clock):
    for username in ("a", "b", "c", "d", "e"):  # 5 usernames, one failure each: the address's limit
        assert attempt(username, "wrong").status_code == 200
    refused = attempt("gov", PASSWORD)
    assert refused.status_code == 429
    assert signed_in(attempt("gov", PASSWORD, ip="198.51.100.2"))  # from another address


def test_a_success_resets_the_usernames_count(world, limits, clock):
    attempt("eng", "wrong")
    attempt("eng", "wrong")
    assert signed_in(attempt("eng", PASSWORD))
    attempt("eng", "wrong")
    attempt("eng", "wrong")
    assert signed_in(attempt("eng", PASSWORD))  # 4 failures in the window, never 3 in a row


def test_empty_submissions_are_not_counted(world, limits, clock):
    for _ in range(5):
        assert Client().post(LOGIN, {"username": "eng", "password": ""}).status_code == 200
    assert signed_in(attempt("eng", PASSWORD))


def test_the_lockout_is_audited_once(world, limits, clock):
    for _ in range(3):
        attempt("eng", "wrong")
    attempt("eng", PASSWORD)  # refused while locked: not audited again
    locked = list(AuditEvent.objects.filter(action="accounts.sign_in_locked"))
    assert len(locked) == 1
    event = locked[0]
    assert event.actor_id is None
    assert event.changes == {
        "username": "eng",
        "locked": "username",
        "failures": 3,
        "window_seconds": 900,
        "until": "1970-01-11T10:16:40+00:00",  # START + 100 s + 15 min
    }
    assert event.context["ip"] == "203.0.113.7"
    assert PASSWORD not in str(event.changes) and "wrong" not in str(event.changes)


def test_the_address_behind_trusted_proxies(world, limits, clock, settings):
    """Behind a proxy every request comes from its address: the client's is the entry the proxy
    appended to X-Forwarded-For (what a client sends itself, further left, is ignored)."""
    settings.TRUSTED_PROXY_COUNT = 1
    for n in range(5):
        Client().post(
            LOGIN,
            {"username": f"user{n}", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=f"1.2.3.{n}, 203.0.113.7",
        )
    locked = Client().post(
        LOGIN,
        {"username": "gov", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="203.0.113.7",
    )
    assert locked.status_code == 429
    other = Client().post(
        LOGIN,
        {"username": "gov", "password": PASSWORD},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR="198.51.100.2",
    )
    assert signed_in(other)


def test_the_message_is_translated(world, limits, clock):
    for _ in range(3):
        attempt("eng", "wrong")
    client = Client(HTTP_ACCEPT_LANGUAGE="es")
    refused = client.post(LOGIN, {"username": "eng", "password": PASSWORD}, REMOTE_ADDR="203.0.113.7")
    assert refused.status_code == 429
    assert (
        "Demasiados intentos fallidos de inicio de sesión. Vuelve a intentarlo dentro de 15 minutos."
        in refused.content.decode()
    )
