"""Per-organization rate limits against a real Redis, with real time."""

from __future__ import annotations

import bisect
import time

import pytest
import redis

from deliveries import ratelimit
from deliveries.ratelimit import HOUR_WINDOW_GUARD_MS, SECOND_WINDOW_GUARD_MS, acquire

SECOND_WINDOW_S = (1_000 + SECOND_WINDOW_GUARD_MS) / 1_000
HOUR_WINDOW_S = 3_600 + HOUR_WINDOW_GUARD_MS / 1_000
# High enough never to bind in tests about the one-second window.
UNBOUNDED_HOUR = 1_000_000


@pytest.fixture
def client(redis_client: redis.Redis) -> redis.Redis:
    """This run's own Redis database (REDIS_URL), emptied before and after."""
    return redis_client


def wait_and_acquire(client: redis.Redis, org: str, n: int, **limits: int) -> ratelimit.Grant:
    """Ask once, and if nothing was granted sleep exactly what the limiter asked, then ask again."""
    grant = acquire(client, org, n, **limits)
    if grant.granted == 0:
        time.sleep(grant.wait_seconds)
        grant = acquire(client, org, n, **limits)
    return grant


def test_acquire_grants_exactly_per_second_when_bursting(client: redis.Redis) -> None:
    grants = [acquire(client, "org-a", 1, per_second=10, per_hour=UNBOUNDED_HOUR) for _ in range(10)]
    assert [g.granted for g in grants] == [1] * 10
    assert all(g.wait_seconds == 0 for g in grants)

    refused = acquire(client, "org-a", 1, per_second=10, per_hour=UNBOUNDED_HOUR)

    assert refused.granted == 0
    assert 0 < refused.wait_seconds <= SECOND_WINDOW_S


def test_acquire_grants_one_more_when_waiting_what_it_asked(client: redis.Redis) -> None:
    assert acquire(client, "org-a", 10, per_second=10, per_hour=UNBOUNDED_HOUR).granted == 10
    refused = acquire(client, "org-a", 1, per_second=10, per_hour=UNBOUNDED_HOUR)
    assert refused.granted == 0

    time.sleep(refused.wait_seconds)
    grant = acquire(client, "org-a", 1, per_second=10, per_hour=UNBOUNDED_HOUR)

    assert (grant.granted, grant.wait_seconds) == (1, 0.0)


def test_acquire_grants_partially_when_fewer_left_than_asked(client: redis.Redis) -> None:
    assert acquire(client, "org-a", 5, per_second=10, per_hour=UNBOUNDED_HOUR).granted == 5

    grant = acquire(client, "org-a", 7, per_second=10, per_hour=UNBOUNDED_HOUR)

    assert grant.granted == 5
    assert 0 < grant.wait_seconds <= SECOND_WINDOW_S


def test_acquire_refuses_for_about_an_hour_when_hour_budget_spent(client: redis.Redis) -> None:
    limits = {"per_second": 10, "per_hour": 15}
    first = acquire(client, "org-a", 15, **limits)
    assert first.granted == 10
    assert 0 < first.wait_seconds <= SECOND_WINDOW_S

    time.sleep(first.wait_seconds)
    second = acquire(client, "org-a", 15, **limits)
    assert second.granted == 5
    third = acquire(client, "org-a", 1, **limits)

    assert third.granted == 0
    # The oldest grants are ~1 s old: the hour frees its first slot ~3599 s from now.
    for grant in (second, third):
        assert HOUR_WINDOW_S - 2 < grant.wait_seconds <= HOUR_WINDOW_S


def test_acquire_keeps_hour_budget_when_refused_by_the_second(client: redis.Redis) -> None:
    limits = {"per_second": 3, "per_hour": 5}
    assert acquire(client, "org-a", 3, **limits).granted == 3
    for _ in range(20):
        assert acquire(client, "org-a", 3, **limits).granted == 0

    grant = wait_and_acquire(client, "org-a", 3, **limits)

    assert grant.granted == 2
    assert grant.wait_seconds > HOUR_WINDOW_S - 2


def test_acquire_keeps_second_budget_when_refused_by_the_second(client: redis.Redis) -> None:
    limits = {"per_second": 3, "per_hour": UNBOUNDED_HOUR}
    assert acquire(client, "org-a", 3, **limits).granted == 3
    for _ in range(20):
        assert acquire(client, "org-a", 3, **limits).granted == 0

    # The three grants of one call expire together; refusals after them must have added nothing.
    grant = wait_and_acquire(client, "org-a", 3, **limits)

    assert (grant.granted, grant.wait_seconds) == (3, 0.0)


def test_acquire_logs_only_what_was_granted_when_hour_binds(client: redis.Redis) -> None:
    grant = acquire(client, "org-a", 6, per_second=10, per_hour=4)
    refused = acquire(client, "org-a", 6, per_second=10, per_hour=4)

    assert grant.granted == 4
    assert refused.granted == 0
    assert client.zcard(ratelimit.rate_key("org-a")) == 4


def test_acquire_keeps_log_members_unique_when_clock_steps_back(client: redis.Redis) -> None:
    key = ratelimit.rate_key("org-a")
    seconds, micros = client.time()
    # A grant scored 5 s ahead of the server clock is what a clock stepped back 5 s leaves behind.
    future_ms = seconds * 1_000 + micros / 1_000 + 5_000
    client.zadd(key, {"from-before-the-step": future_ms})

    grants = [acquire(client, "org-a", 3, per_second=7, per_hour=100) for _ in range(2)]
    refused = acquire(client, "org-a", 1, per_second=7, per_hour=100)

    log = dict(client.zrange(key, 0, -1, withscores=True))
    assert len(log) == 7
    assert log[b"from-before-the-step"] == future_ms
    # The grant from before the step still counts: 1 + 3 + 3 fill the second's 7.
    assert [g.granted for g in grants] == [3, 3]
    assert refused.granted == 0


def test_acquire_stamps_a_paced_grant_spacing_apart_from_now(client: redis.Redis) -> None:
    seconds, micros = client.time()
    before_ms = seconds * 1_000 + micros / 1_000

    grant = acquire(client, "org-a", 4, per_second=10, per_hour=100, spacing_seconds=0.02)

    scores = [client.zscore(ratelimit.rate_key("org-a"), member) for member in grant.members]
    assert grant.granted == 4
    assert len(set(grant.members)) == 4
    assert before_ms <= scores[0] < before_ms + 1_000
    assert [round(b - a, 3) for a, b in zip(scores, scores[1:], strict=False)] == [20.0, 20.0, 20.0]


def test_acquire_counts_paced_stamps_ahead_of_now_when_granting_more(client: redis.Redis) -> None:
    # Six sends planned over the next 5 s hold six of the second's ten from now on.
    assert acquire(client, "org-a", 6, per_second=10, per_hour=100, spacing_seconds=1.0).granted == 6

    grant = acquire(client, "org-a", 10, per_second=10, per_hour=100)

    assert grant.granted == 4
    # The next room: when the earliest of the ten leaves the window, ~1.05 s from now.
    assert 1.0 < grant.wait_seconds <= SECOND_WINDOW_S


def test_acquire_frees_what_is_given_back_when_asking_again(client: redis.Redis) -> None:
    first = acquire(client, "org-a", 10, per_second=10, per_hour=12, spacing_seconds=0.01)
    assert first.granted == 10

    # Seven of them were never sent: given back with the next call, they make its room.
    grant = acquire(client, "org-a", 10, per_second=10, per_hour=12, give_back=first.members[3:])

    assert grant.granted == 7
    assert set(grant.members).isdisjoint(first.members)
    assert client.zcard(ratelimit.rate_key("org-a")) == 10


def test_give_back_frees_members_when_a_drain_stops_early(client: redis.Redis) -> None:
    first = acquire(client, "org-a", 5, per_second=5, per_hour=100, spacing_seconds=0.01)

    ratelimit.give_back(client, "org-a", first.members[1:])

    assert acquire(client, "org-a", 5, per_second=5, per_hour=100).granted == 4


def test_acquire_keeps_orgs_independent_when_one_is_exhausted(client: redis.Redis) -> None:
    limits = {"per_second": 5, "per_hour": 5}
    assert acquire(client, "org-a", 5, **limits).granted == 5
    assert acquire(client, "org-a", 1, **limits).granted == 0

    assert acquire(client, "org-b", 5, **limits).granted == 5


def test_acquire_sets_key_expiry_when_granting(client: redis.Redis) -> None:
    acquire(client, "org-a", 1, per_second=10, per_hour=100)

    key = ratelimit.rate_key("org-a")
    assert key.startswith("whk:rl:")
    for name in ratelimit.rate_keys("org-a"):
        assert 3_600_000 < client.pttl(name) <= 3_600_000 + HOUR_WINDOW_GUARD_MS + 1_000


def test_acquire_keeps_the_keys_for_the_newest_stamp_when_a_later_grant_is_not_paced(client: redis.Redis) -> None:
    acquire(client, "org-a", 3, per_second=10, per_hour=100, spacing_seconds=10.0)
    acquire(client, "org-a", 1, per_second=10, per_hour=100)

    # The paced grant's last stamp is 20 s ahead: the log must still hold it an hour after that.
    for name in ratelimit.rate_keys("org-a"):
        assert 3_620_000 < client.pttl(name) <= 3_620_000 + HOUR_WINDOW_GUARD_MS + 1_000


def test_reset_forgets_grants_when_called(client: redis.Redis) -> None:
    assert acquire(client, "org-a", 5, per_second=5, per_hour=5).granted == 5

    ratelimit.reset(client, "org-a")

    assert not any(client.exists(name) for name in ratelimit.rate_keys("org-a"))
    assert acquire(client, "org-a", 5, per_second=5, per_hour=5).granted == 5


def test_acquire_rejects_nonsense_when_limits_invalid(client: redis.Redis) -> None:
    with pytest.raises(ValueError, match="limits"):
        acquire(client, "org-a", 1, per_second=0, per_hour=10)
    with pytest.raises(ValueError, match="n must be"):
        acquire(client, "org-a", -1, per_second=1, per_hour=10)
    with pytest.raises(ValueError, match="spacing"):
        acquire(client, "org-a", 1, per_second=1, per_hour=10, spacing_seconds=-0.1)
    assert acquire(client, "org-a", 0, per_second=1, per_hour=1) == ratelimit.Grant(0, 0.0)


def test_acquire_never_exceeds_per_second_in_any_window_when_hammered(client: redis.Redis) -> None:
    per_second = 10
    grant_times: list[float] = []
    deadline = time.monotonic() + 2.5
    while (now := time.monotonic()) < deadline:
        grant = acquire(client, "org-a", 1, per_second=per_second, per_hour=UNBOUNDED_HOUR)
        if grant.granted:
            # What a receiver would count: the moment the send leaves, right after the grant.
            grant_times.append(time.time())
        else:
            time.sleep(min(grant.wait_seconds, max(0.0, deadline - now)))

    # Windows open at 0, ~1.05 and ~2.1 s: the limiter lets through what it may, no less.
    assert 2 * per_second < len(grant_times) <= 3 * per_second
    for i, start in enumerate(grant_times):
        in_window = bisect.bisect_left(grant_times, start + 1.0) - i
        assert in_window <= per_second, f"{in_window} grants in the second from {start}"
