"""Sign-in guessing is slowed: an address and account pair is refused after repeated failures."""

from __future__ import annotations

import pytest
from conftest import PASSWORD
from django.contrib.auth import get_user_model
from django.test import Client

LOGIN = "/ui/login"
LIMIT = 3


@pytest.fixture(autouse=True)
def small_limit(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT


def _sign_in(client: Client, password: str, email: str = "alice@acme.example"):
    return client.post(LOGIN, {"username": email, "password": password})


def _fail(client: Client, times: int, email: str = "alice@acme.example") -> None:
    for _ in range(times):
        assert _sign_in(client, "wrong password", email).status_code == 200


def test_correct_password_is_refused_with_429_when_pair_has_failed_too_often(client, member):
    _fail(client, LIMIT)

    response = _sign_in(client, PASSWORD)

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_sign_in_works_from_another_address_when_one_address_is_locked(client, member):
    _fail(client, LIMIT)

    elsewhere = Client(REMOTE_ADDR="192.0.2.7")

    assert _sign_in(elsewhere, PASSWORD).status_code == 302


def test_other_accounts_sign_in_when_one_is_locked_from_this_address(client, member, other_member):
    _fail(client, LIMIT)

    assert _sign_in(client, PASSWORD, email="bob@globex.example").status_code == 302


def test_success_clears_the_count_when_below_the_limit(client, member):
    _fail(client, LIMIT - 1)
    assert _sign_in(client, PASSWORD).status_code == 302
    client.logout()

    _fail(client, LIMIT - 1)

    assert _sign_in(client, PASSWORD).status_code == 302


def test_sign_in_works_again_when_the_window_has_passed(client, member, settings, redis_client):
    _fail(client, LIMIT)
    for key in redis_client.scan_iter("whk:login-failures:*"):
        assert 0 < redis_client.ttl(key) <= settings.LOGIN_FAILURE_WINDOW
        redis_client.delete(key)  # as its expiry would

    assert _sign_in(client, PASSWORD).status_code == 302


def test_admin_refuses_correct_password_when_pair_has_failed_too_often(client, db):
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    for _ in range(LIMIT):
        client.post("/admin/login/", {"username": "ops", "password": "wrong"})

    response = client.post("/admin/login/", {"username": "ops", "password": "a-long-password-1"})

    assert response.status_code == 200  # the form again, not a redirect into the admin
    assert "_auth_user_id" not in client.session
    assert (
        Client(REMOTE_ADDR="192.0.2.7")
        .post("/admin/login/", {"username": "ops", "password": "a-long-password-1"})
        .status_code
        == 302
    )


# --- Behind proxies ----------------------------------------------------------------------

PROXY = "10.0.0.2"  # the reverse proxy in front of the web process


def _behind_proxy(forwarded_for: str) -> Client:
    return Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for)


def test_clients_behind_one_proxy_are_counted_apart_when_one_proxy_hop_is_trusted(member, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    guesser = _behind_proxy("198.51.100.7")
    _fail(guesser, LIMIT)

    assert _sign_in(guesser, PASSWORD).status_code == 429
    # Someone else behind the same proxy is not the guesser.
    assert _sign_in(_behind_proxy("203.0.113.9"), PASSWORD).status_code == 302


def test_forged_forwarded_for_buys_nothing_when_the_proxy_appends_the_real_address(member, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    for forged in range(LIMIT):  # the client writes a new address each time; the proxy appends its own
        assert _sign_in(_behind_proxy(f"192.0.2.{forged}, 198.51.100.7"), "wrong password").status_code == 200

    assert _sign_in(_behind_proxy("192.0.2.99, 198.51.100.7"), PASSWORD).status_code == 429


def test_forwarded_for_is_ignored_when_no_proxy_is_trusted(member, settings):
    assert settings.TRUSTED_PROXY_HOPS == 0
    for forged in range(LIMIT):
        _sign_in(Client(HTTP_X_FORWARDED_FOR=f"192.0.2.{forged}"), "wrong password")

    assert _sign_in(Client(HTTP_X_FORWARDED_FOR="192.0.2.99"), PASSWORD).status_code == 429


def test_the_peer_address_counts_when_the_header_is_shorter_than_the_trusted_hops(member, settings):
    settings.TRUSTED_PROXY_HOPS = 2
    for forged in range(LIMIT):  # one entry where two proxies would have left two: it came round them
        _sign_in(Client(REMOTE_ADDR="198.51.100.50", HTTP_X_FORWARDED_FOR=f"192.0.2.{forged}"), "wrong password")

    assert _sign_in(Client(REMOTE_ADDR="198.51.100.50", HTTP_X_FORWARDED_FOR="192.0.2.99"), PASSWORD).status_code == 429
    assert (
        _sign_in(Client(REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.9, 10.0.0.3"), PASSWORD).status_code == 302
    )


# --- Across addresses and across accounts -------------------------------------------------


def test_an_account_is_refused_from_everywhere_when_guessed_from_many_addresses(member, settings, redis_client):
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 5
    for n in range(5):  # each address stays below the pair's limit
        _sign_in(Client(REMOTE_ADDR=f"198.51.100.{n}"), "wrong password")

    owner = Client(REMOTE_ADDR="203.0.113.50")
    assert _sign_in(owner, PASSWORD).status_code == 429

    # The lock-out ends with the window, which the failures did not extend: expire the account's count.
    (account_key,) = redis_client.keys("whk:login-failures:account:*")
    assert 0 < redis_client.ttl(account_key) <= settings.LOGIN_FAILURE_WINDOW
    redis_client.delete(account_key)
    assert _sign_in(owner, PASSWORD).status_code == 302


def test_one_address_is_refused_for_every_account_when_it_sprays_passwords(member, settings):
    settings.LOGIN_ADDRESS_FAILURE_LIMIT = 4
    sprayer = Client(REMOTE_ADDR="198.51.100.66")
    for n in range(4):  # one guess at each of four accounts
        _sign_in(sprayer, "Winter2026!", email=f"user{n}@acme.example")

    assert _sign_in(sprayer, PASSWORD).status_code == 429
    assert _sign_in(Client(REMOTE_ADDR="203.0.113.50"), PASSWORD).status_code == 302


def test_refused_attempts_do_not_count_so_the_owner_is_free_when_the_window_ends(member, settings, redis_client):
    settings.LOGIN_ACCOUNT_FAILURE_LIMIT = 5
    for n in range(5):
        _sign_in(Client(REMOTE_ADDR=f"198.51.100.{n}"), "wrong password")
    before = {key: redis_client.get(key) for key in redis_client.keys("whk:login-failures:*")}
    owner = Client(REMOTE_ADDR="203.0.113.50")

    for _ in range(LIMIT + 2):  # the owner keeps trying during the lock-out, here and in the admin
        assert _sign_in(owner, PASSWORD).status_code == 429
        owner.post("/admin/login/", {"username": "alice@acme.example", "password": PASSWORD})

    assert {key: redis_client.get(key) for key in redis_client.keys("whk:login-failures:*")} == before
    (account_key,) = redis_client.keys("whk:login-failures:account:*")
    redis_client.delete(account_key)  # as its expiry would
    assert _sign_in(owner, PASSWORD).status_code == 302


def test_later_failures_never_extend_a_window_when_it_has_started(client, member, settings, redis_client):
    _sign_in(client, "wrong password")
    keys = redis_client.keys("whk:login-failures:*")
    assert len(keys) == 3  # the pair, the account, the address
    for key in keys:
        redis_client.expire(key, 5)

    _sign_in(client, "wrong password")

    assert all(0 < redis_client.ttl(key) <= 5 for key in keys)
