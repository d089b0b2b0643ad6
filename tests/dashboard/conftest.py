"""Dashboard fixtures: users who belong to an organization, signed in."""

from __future__ import annotations

import pytest
from conftest import create_member


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Real hashing is deliberately slow; these tests are about pages, not hashes."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def no_failed_sign_ins():
    """Failed sign-ins are counted in Redis for minutes; each test starts with none."""
    from webhooks.login_throttle import KEY_PREFIX
    from webhooks_project.redis import get_redis

    client = get_redis()
    for key in client.scan_iter(f"{KEY_PREFIX}*"):
        client.delete(key)


@pytest.fixture
def member(tenant):
    return create_member(tenant.organization, "alice@acme.example")


@pytest.fixture
def other_member(other_tenant):
    return create_member(other_tenant.organization, "bob@globex.example")


@pytest.fixture
def ui(client, member):
    """A test client signed in as a member of ``tenant``'s organization."""
    client.force_login(member)
    return client


@pytest.fixture
def other_ui(member, other_member):
    """A second client, signed in as a member of ``other_tenant``'s organization."""
    from django.test import Client

    other = Client()
    other.force_login(other_member)
    return other
