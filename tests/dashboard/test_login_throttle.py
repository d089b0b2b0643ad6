"""Sign-in guessing is slowed: an address and account pair is refused after repeated failures."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from dashboard.conftest import PASSWORD

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
