"""Dashboard fixtures: users who belong to an organization, and delivery history to show."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

PASSWORD = "correct horse battery staple"


def create_member(organization, email: str, password: str = PASSWORD):
    """A dashboard user, made the way an operator makes one: with the create_user command."""
    from django.contrib.auth import get_user_model

    call_command("create_user", organization.id, email, password=password, stdout=io.StringIO(), stderr=io.StringIO())
    return get_user_model().objects.get(username=email)


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


def make_delivery(
    webhook,
    *,
    status: str = "succeeded",
    event_type: str = "threat.detected",
    created_at: datetime | None = None,
    attempts: list[tuple[int | None, str, str]] = (),
):
    """A delivery of a fresh event to ``webhook``, with attempts given as (status, body, error)."""
    from deliveries.models import Attempt, Delivery
    from events.catalogue import EVENT_TYPES
    from events.services import build_event

    event = build_event(webhook.organization_id, event_type, dict(EVENT_TYPES[event_type].sample))
    event.save(force_insert=True)
    created_at = created_at or timezone.now()
    delivery = Delivery.objects.create(
        organization_id=webhook.organization_id,
        webhook=webhook,
        event=event,
        event_type=event_type,
        status=status,
        attempts=len(attempts),
        created_at=created_at,
        next_attempt_at=None if status in ("succeeded", "failed") else timezone.now(),
        last_attempt_at=created_at if attempts else None,
        response_status=attempts[-1][0] if attempts else None,
    )
    for number, (code, body, error) in enumerate(attempts, start=1):
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            requested_at=created_at + timedelta(seconds=number),
            response_status=code,
            duration_ms=40 * number,
            response_body=body,
            error=error,
        )
    return delivery


@pytest.fixture
def delivery_factory() -> Callable[..., object]:
    return make_delivery
