"""Endpoint slots and the wake-pending flag against a real Redis, with real time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
import redis

from deliveries.concurrency import (
    acquire_slot,
    clear_wake_pending,
    mark_wake_pending,
    mark_wakes_pending,
    release_slot,
    renew_slot,
)

REDIS_TEST_URL = "redis://127.0.0.1:6379/15"
SHORT_LEASE_S = 0.2
# Generous for a 0.2 s lease on a loaded CI machine, still fast when things work.
POLL_DEADLINE_S = 3.0
POLL_INTERVAL_S = 0.01
LONG_LEASE_S = 30.0

T = TypeVar("T")


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_TEST_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def poll_until(attempt: Callable[[], T | None]) -> tuple[T, float]:
    """Call ``attempt`` until it returns something truthy; fail at the deadline."""
    started = time.monotonic()
    while True:
        result = attempt()
        elapsed = time.monotonic() - started
        if result:
            return result, elapsed
        assert elapsed < POLL_DEADLINE_S, "condition not met before the deadline"
        time.sleep(POLL_INTERVAL_S)


def test_acquire_slot_refuses_when_limit_slots_held(client: redis.Redis) -> None:
    tokens = [acquire_slot(client, "wh-1", limit=2, lease_seconds=LONG_LEASE_S) for _ in range(2)]

    assert all(tokens)
    assert tokens[0] != tokens[1]
    assert acquire_slot(client, "wh-1", limit=2, lease_seconds=LONG_LEASE_S) is None


def test_release_slot_frees_a_slot_when_released(client: redis.Redis) -> None:
    token = acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S)
    assert token is not None
    assert acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S) is None

    release_slot(client, "wh-1", token)

    assert acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S) is not None


def test_acquire_slot_frees_expired_lease_when_holder_vanishes(client: redis.Redis) -> None:
    started = time.monotonic()
    stale = acquire_slot(client, "wh-1", limit=1, lease_seconds=SHORT_LEASE_S)
    assert stale is not None

    token, _ = poll_until(lambda: acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S))

    assert time.monotonic() - started >= SHORT_LEASE_S - 0.01
    assert token != stale
    assert renew_slot(client, "wh-1", stale, LONG_LEASE_S) is False


def test_renew_slot_extends_lease_when_held(client: redis.Redis) -> None:
    token = acquire_slot(client, "wh-1", limit=1, lease_seconds=SHORT_LEASE_S)
    assert token is not None

    assert renew_slot(client, "wh-1", token, LONG_LEASE_S) is True

    # Watch the slot for well past the original lease: it must stay held throughout.
    deadline = time.monotonic() + SHORT_LEASE_S * 3
    while time.monotonic() < deadline:
        assert acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S) is None
        time.sleep(POLL_INTERVAL_S)
    assert renew_slot(client, "wh-1", token, LONG_LEASE_S) is True


def test_renew_slot_refuses_when_token_released_or_unknown(client: redis.Redis) -> None:
    token = acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S)
    assert token is not None
    release_slot(client, "wh-1", token)

    assert renew_slot(client, "wh-1", token, LONG_LEASE_S) is False
    assert renew_slot(client, "wh-1", "not-a-token", LONG_LEASE_S) is False
    # A failed renew must not have created a lease.
    assert acquire_slot(client, "wh-1", limit=1, lease_seconds=LONG_LEASE_S) is not None


def test_slots_are_independent_when_webhooks_differ(client: redis.Redis) -> None:
    token_a = acquire_slot(client, "wh-a", limit=1, lease_seconds=LONG_LEASE_S)
    assert token_a is not None

    token_b = acquire_slot(client, "wh-b", limit=1, lease_seconds=LONG_LEASE_S)
    assert token_b is not None
    assert renew_slot(client, "wh-b", token_a, LONG_LEASE_S) is False
    release_slot(client, "wh-b", token_a)

    assert acquire_slot(client, "wh-a", limit=1, lease_seconds=LONG_LEASE_S) is None
    assert renew_slot(client, "wh-a", token_a, LONG_LEASE_S) is True


def test_slot_key_expires_when_last_lease_would(client: redis.Redis) -> None:
    acquire_slot(client, "wh-1", limit=2, lease_seconds=LONG_LEASE_S)
    acquire_slot(client, "wh-1", limit=2, lease_seconds=SHORT_LEASE_S)

    ttl_ms = client.pttl("whk:slot:wh-1")

    assert LONG_LEASE_S * 1000 < ttl_ms <= LONG_LEASE_S * 1000 + 1_000


def test_acquire_slot_rejects_nonsense_when_arguments_invalid(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="limit"):
        acquire_slot(client, "wh-1", limit=0, lease_seconds=1.0)
    with pytest.raises(ValueError, match="lease_seconds"):
        acquire_slot(client, "wh-1", limit=1, lease_seconds=0)


def test_mark_wake_pending_is_true_only_once_when_set(client: redis.Redis) -> None:
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is False
    assert mark_wake_pending(client, "wh-2", LONG_LEASE_S) is True
    assert 0 < client.pttl("whk:wake:wh-1") <= LONG_LEASE_S * 1000


def test_mark_wake_pending_sets_again_when_cleared(client: redis.Redis) -> None:
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True

    clear_wake_pending(client, "wh-1")

    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True


def test_mark_wake_pending_sets_again_when_ttl_lapses(client: redis.Redis) -> None:
    assert mark_wake_pending(client, "wh-1", SHORT_LEASE_S) is True

    _, elapsed = poll_until(lambda: mark_wake_pending(client, "wh-1", SHORT_LEASE_S))

    assert elapsed >= SHORT_LEASE_S - 0.01


def test_mark_wakes_pending_sets_each_flag_once_when_called_for_several(client) -> None:
    assert mark_wakes_pending(client, ["whk_a", "whk_b"], 10) == [True, True]
    assert mark_wakes_pending(client, ["whk_b", "whk_c"], 10) == [False, True]
    assert mark_wake_pending(client, "whk_a", 10) is False
