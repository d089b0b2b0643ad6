"""Endpoint slots and the wake-pending flag against a real Redis, with real time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest
import redis

from deliveries.concurrency import (
    Slots,
    acquire_slots,
    mark_wake_pending,
    mark_wakes_pending,
    release_slots,
)

SHORT_LEASE_S = 0.2
# Generous for a 0.2 s lease on a loaded CI machine, still fast when things work.
POLL_DEADLINE_S = 3.0
POLL_INTERVAL_S = 0.01
LONG_LEASE_S = 30.0

T = TypeVar("T")


@pytest.fixture
def client(redis_client) -> redis.Redis:
    return redis_client


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


def take(
    client: redis.Redis,
    webhook_id: str = "wh-1",
    org_id: str = "org-1",
    *,
    endpoint_limit: int = 1,
    org_limit: int = 10,
    lease: float = LONG_LEASE_S,
) -> Slots:
    return acquire_slots(
        client,
        webhook_id=webhook_id,
        org_id=org_id,
        endpoint_limit=endpoint_limit,
        org_limit=org_limit,
        lease_seconds=lease,
    )


def token_of(slots: Slots) -> str | None:
    return slots.token


def test_acquire_slots_says_endpoint_busy_when_its_limit_is_held(client: redis.Redis) -> None:
    first, second = take(client, endpoint_limit=2), take(client, endpoint_limit=2)

    assert first.token
    assert second.token
    assert first.token != second.token
    assert take(client, endpoint_limit=2) == Slots(endpoint_busy=True)


def test_release_slots_frees_both_slots_when_released(client: redis.Redis) -> None:
    held = take(client, org_limit=1)
    assert take(client, "wh-2", org_limit=1).parked

    assert release_slots(client, webhook_id="wh-1", org_id="org-1", token=held.token) == "wh-2"

    assert take(client, org_limit=1).token
    assert client.zcard("whk:orgslot:org-1") == 1


def test_acquire_slots_frees_expired_lease_when_holder_vanishes(client: redis.Redis) -> None:
    started = time.monotonic()
    stale = take(client, org_limit=1, lease=SHORT_LEASE_S)
    assert stale.token

    fresh, _ = poll_until(lambda: token_of(take(client, "wh-2", org_limit=1)))

    assert time.monotonic() - started >= SHORT_LEASE_S - 0.01
    assert fresh != stale.token


def test_acquire_slots_parks_webhook_when_organization_holds_its_limit(client: redis.Redis) -> None:
    holders = [take(client, f"wh-{n}", org_limit=2) for n in range(2)]
    assert all(h.token for h in holders)

    parked_first = take(client, "wh-x", org_limit=2)
    parked_second = take(client, "wh-y", org_limit=2)
    parked_again = take(client, "wh-x", org_limit=2)  # keeps its place in the line

    assert parked_first == parked_second == parked_again == Slots(parked=True)
    assert take(client, "wh-z", "org-2", org_limit=2).token  # another organization is not affected
    woken = [release_slots(client, webhook_id=f"wh-{n}", org_id="org-1", token=h.token) for n, h in enumerate(holders)]
    assert woken == ["wh-x", "wh-y"]  # the longest-waiting first
    assert release_slots(client, webhook_id="wh-0", org_id="org-1", token="unknown") is None


def test_acquire_slots_leaves_the_line_when_a_parked_webhook_gets_a_slot(client: redis.Redis) -> None:
    held = take(client, org_limit=1)
    assert take(client, "wh-2", org_limit=1).parked
    release_slots(client, webhook_id="wh-1", org_id="org-1", token=held.token)
    take(client, "wh-3", org_limit=1)
    assert take(client, "wh-2", org_limit=2).token  # got in: it is no longer parked

    assert client.zcard("whk:parked:org-1") == 0


def test_acquire_slots_is_busy_not_parked_when_the_endpoint_is_full(client: redis.Redis) -> None:
    take(client, org_limit=1)

    assert take(client, org_limit=1) == Slots(endpoint_busy=True)
    assert client.zcard("whk:parked:org-1") == 0  # its running drain claims the work


def test_slot_keys_expire_when_last_lease_would(client: redis.Redis) -> None:
    take(client, endpoint_limit=2, lease=LONG_LEASE_S)
    take(client, endpoint_limit=2, lease=SHORT_LEASE_S)

    for key in ("whk:slot:wh-1", "whk:orgslot:org-1"):
        assert LONG_LEASE_S * 1000 < client.pttl(key) <= LONG_LEASE_S * 1000 + 1_000


def test_acquire_slots_rejects_nonsense_when_arguments_invalid(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="limits"):
        take(client, endpoint_limit=0)
    with pytest.raises(ValueError, match="limits"):
        take(client, org_limit=0)
    with pytest.raises(ValueError, match="lease_seconds"):
        take(client, lease=0)


def test_mark_wake_pending_is_true_only_once_when_set(client: redis.Redis) -> None:
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is False
    assert mark_wake_pending(client, "wh-2", LONG_LEASE_S) is True
    assert 0 < client.pttl("whk:wake:wh-1") <= LONG_LEASE_S * 1000


def test_mark_wake_pending_sets_again_when_the_drain_releases_its_slots(client: redis.Redis) -> None:
    held = take(client)
    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True

    release_slots(client, webhook_id="wh-1", org_id="org-1", token=held.token)

    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is True


def test_release_slots_holds_the_wake_flag_when_asked_to(client: redis.Redis) -> None:
    held = take(client)
    assert mark_wake_pending(client, "wh-1", SHORT_LEASE_S) is True

    release_slots(client, webhook_id="wh-1", org_id="org-1", token=held.token, hold_wake_seconds=LONG_LEASE_S)

    assert mark_wake_pending(client, "wh-1", LONG_LEASE_S) is False
    assert SHORT_LEASE_S * 1000 < client.pttl("whk:wake:wh-1") <= LONG_LEASE_S * 1000
    assert client.zcard("whk:slot:wh-1") == 0


def test_mark_wake_pending_sets_again_when_ttl_lapses(client: redis.Redis) -> None:
    assert mark_wake_pending(client, "wh-1", SHORT_LEASE_S) is True

    _, elapsed = poll_until(lambda: mark_wake_pending(client, "wh-1", SHORT_LEASE_S))

    assert elapsed >= SHORT_LEASE_S - 0.01


def test_mark_wakes_pending_sets_each_flag_once_when_called_for_several(client) -> None:
    assert mark_wakes_pending(client, ["whk_a", "whk_b"], 10) == [True, True]
    assert mark_wakes_pending(client, ["whk_b", "whk_c"], 10) == [False, True]
    assert mark_wake_pending(client, "whk_a", 10) is False
