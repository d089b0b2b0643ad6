"""``manage.py create_user``: the way an operator gives a person access to the dashboard."""

from __future__ import annotations

import io

import pytest
from conftest import PASSWORD
from django.core.management import CommandError, call_command


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("create_user", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_create_user_when_organization_exists_makes_a_member_who_can_log_in(tenant, client):
    from webhooks.models import Membership

    assert run(tenant.organization.id, "Carol@Acme.Example", "--password", PASSWORD) == "carol@acme.example"
    membership = Membership.objects.select_related("user").get(user__username="carol@acme.example")
    assert membership.organization == tenant.organization
    assert membership.user.email == "carol@acme.example"
    response = client.post("/ui/login", {"username": "carol@acme.example", "password": PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/ui/settings/integrations/webhooks"


def test_create_user_when_organization_unknown_fails(db):
    from django.contrib.auth import get_user_model

    with pytest.raises(CommandError, match="No organization 'org_nope'"):
        run("org_nope", "dave@example.com", "--password", PASSWORD)
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", PASSWORD, "not a valid email address"),
        ("erin@example.com", "short", "at least 8 characters"),
    ],
)
def test_create_user_when_input_invalid_fails(tenant, email, password, message):
    with pytest.raises(CommandError, match=message):
        run(tenant.organization.id, email, "--password", password)


def test_create_user_when_email_taken_fails_and_keeps_the_first(tenant, other_tenant):
    from webhooks.models import Membership

    run(tenant.organization.id, "frank@example.com", "--password", PASSWORD)
    with pytest.raises(CommandError, match="already exists"):
        run(other_tenant.organization.id, "FRANK@example.com", "--password", PASSWORD + "x")
    assert Membership.objects.get(user__username="frank@example.com").organization == tenant.organization


def test_create_user_without_password_and_terminal_fails(tenant, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(CommandError, match="--password"):
        run(tenant.organization.id, "gina@example.com")
