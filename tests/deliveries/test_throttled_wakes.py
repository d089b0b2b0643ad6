"""Wakes held after a drain: a throttled organization's until its throttle ends, and a webhook's
whose drain found its deliveries late (the workers behind) for WEBHOOK_COALESCE_SECONDS. In
process: the drain called directly against real PostgreSQL, Redis and a loopback receiver;
counted end to end, with a worker, in tests/e2e/test_throttled_wakes.py."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import make_webhook
from django.utils import timezone

from deliveries import dispatch, drain
from deliveries.models import Delivery
from events import emit

pytestmark = pytest.mark.django_db(transaction=True)

QUEUE = "webhooks"  # CELERY_TASK_DEFAULT_QUEUE: the Redis list the messages wait in


def _drain_messages(redis_client) -> int:
    messages = [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]
    return sum(m["headers"]["task"] == dispatch.DRAIN_TASK for m in messages)


@pytest.fixture(autouse=True)
def closed_breaker():
    dispatch.breaker.close()
    yield
    dispatch.breaker.close()


def test_throttled_drain_keeps_the_wake_pending_until_the_throttle_ends(tenant, receiver, redis_client, settings):
    settings.WEBHOOK_RATE_PER_HOUR = 2
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    for i in range(3):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})
    redis_client.delete(QUEUE)  # this test runs the drain itself, as a worker would

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 2  # the hour's budget, then the limiter refused
    assert outcome.throttled
    assert not outcome.again
    assert outcome.retry_in > 3000  # about an hour
    # The flag is held as long: whatever the organization emits meanwhile sends no message.
    assert redis_client.pttl(f"whk:wake:{webhook.id}") > 3000 * 1000
    for i in range(20):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_more_{i}"})
    assert _drain_messages(redis_client) == 0
    assert Delivery.objects.filter(webhook=webhook, status="pending").count() == 21


def test_short_throttle_holds_the_wake_at_least_the_minimum(tenant, receiver, redis_client, settings):
    settings.WEBHOOK_RATE_PER_SECOND = 1
    settings.WEBHOOK_THROTTLED_WAKE_MIN = 2.0
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    for i in range(3):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_{i}"})

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert outcome.throttled
    assert outcome.retry_in == 2.0  # the limiter asked for about a second; the floor wins
    assert 1000 < redis_client.pttl(f"whk:wake:{webhook.id}") <= 2000


def test_drain_clears_the_wake_when_not_throttled(tenant, receiver, redis_client):
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert not outcome.throttled
    assert redis_client.exists(f"whk:wake:{webhook.id}") == 0


# --- Coalescing under load: a late drain holds the wake too ------------------------------


def _make_late(webhook, seconds: float) -> None:
    """As if the workers were behind: the webhook's due deliveries have waited ``seconds``."""
    Delivery.objects.filter(webhook=webhook, status="pending").update(
        next_attempt_at=timezone.now() - timedelta(seconds=seconds)
    )


def test_late_drain_holds_the_wake_and_its_countdown_takes_what_came_meanwhile(
    tenant, receiver, redis_client, settings
):
    settings.WEBHOOK_COALESCE_SECONDS = 0.25
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    _make_late(webhook, 1.0)
    redis_client.delete(QUEUE)  # this test runs the drains itself, as a worker would

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 1
    assert outcome.coalesced
    assert not outcome.again
    assert outcome.retry_in is None  # no retry: the task's one countdown is the coalescing window
    # The flag stays set until that countdown's drain runs: what is emitted meanwhile sends nothing.
    assert redis_client.pttl(f"whk:wake:{webhook.id}") > 1000
    for i in range(5):
        emit(tenant.organization, "agent.online", {"agent_id": f"agt_more_{i}"})
    assert _drain_messages(redis_client) == 0

    settings.WEBHOOK_COALESCE_LATENESS = 60.0  # by the countdown, the workers have caught up
    drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 6  # all five in the countdown's one drain
    assert redis_client.exists(f"whk:wake:{webhook.id}") == 0


def test_late_drain_of_a_failing_receiver_keeps_its_retrys_own_wake(tenant, receiver, redis_client, settings):
    settings.WEBHOOK_RETRY_DELAYS = [30]
    receiver.responses["/fails"] = 500
    webhook = make_webhook(tenant.organization, receiver.url("/fails")).webhook
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    _make_late(webhook, 1.0)

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert outcome.coalesced
    # The retry is woken when it is due, not only by the coalescing window's drain (which finds
    # nothing due and ends): without it, the retry would wait for the sweeper.
    assert outcome.retry_in == 30


def test_prompt_drain_does_not_hold_the_wake(tenant, receiver, redis_client, settings):
    settings.WEBHOOK_COALESCE_LATENESS = 5.0
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 1
    assert not outcome.coalesced
    assert outcome.retry_in is None  # nothing scheduled: the next event wakes it at once
    assert redis_client.exists(f"whk:wake:{webhook.id}") == 0


def test_coalescing_turned_off(tenant, receiver, redis_client, settings):
    settings.WEBHOOK_COALESCE_SECONDS = 0
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    emit(tenant.organization, "agent.online", {"agent_id": "agt_1"})
    _make_late(webhook, 10.0)

    outcome = drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 1
    assert not outcome.coalesced
    assert outcome.retry_in is None
    assert redis_client.exists(f"whk:wake:{webhook.id}") == 0
