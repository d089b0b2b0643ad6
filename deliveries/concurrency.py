"""Cluster-wide drain slots (per endpoint and per organization) and the wake-pending flag.

A drain sends to one endpoint, one attempt at a time, so a drain in flight is an attempt in
flight. Before it starts it takes two slots in one atomic step: one of its endpoint's
``endpoint_limit`` slots (a hanging endpoint ties up at most that many worker threads) and one
of its organization's ``org_limit`` slots (an organization with many hanging endpoints still
holds at most that many threads, so it cannot starve the others).

Each slot set is a sorted set of lease tokens scored by their expiry on the Redis server's
clock (``TIME`` inside the scripts, so worker clocks never matter). Expired leases are dropped
before anything is counted, so a killed worker's slots free themselves after one lease.

When the endpoint is full, the drain simply ends: the drains holding its slots claim the work.
When the organization is full, the webhook is *parked* in the organization's waiting set in
the same script, and the drain ends without holding a thread. Whoever releases one of the
organization's slots takes the longest-parked webhook out in the same step and wakes it. Both
steps are single scripts, so no wake-up falls between a park and a release; a wake that is
lost anyway (a worker killed in between) is covered by the sweeper, which wakes every webhook
with due deliveries. Other organizations never wait behind parked work: it is not queued.

The wake-pending flag coalesces wake-up messages: whoever sets it (``SET NX``) sends the one
message; everyone else sees it already set and sends nothing until the drain clears it. A
drain stopped by its organization's rate limit holds it instead, until its countdown wakes
the webhook at the throttle's end.
"""

from __future__ import annotations

import math
import secrets
import weakref
from dataclasses import dataclass

import redis
from redis.commands.core import Script

SLOT_KEY_PREFIX = "whk:slot:"
ORG_SLOT_KEY_PREFIX = "whk:orgslot:"
PARKED_KEY_PREFIX = "whk:parked:"
WAKE_KEY_PREFIX = "whk:wake:"

# A slot set outlives its longest lease by this much, so key expiry never races the trim.
KEY_EXPIRY_SLACK_MS = 1_000
# 128 random bits: a token is never guessed or reused by another holder.
TOKEN_BYTES = 16

# Both scripts: KEYS = endpoint slots, organization slots, organization's parked webhooks.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
-- Lua's default number-to-string keeps 14 digits (0.1 ms here); format scores explicitly.
local function ms(x) return string.format('%.3f', x) end
-- Keep a slot set alive as long as its longest remaining lease (an empty set is deleted by Redis).
local function extend_key(key, slack)
  local last = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', key, math.ceil(tonumber(last[2]) - now + slack))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ms(now))
"""

_ACQUIRE_LUA = (
    _LUA_PRELUDE
    + """
-- ARGV: token, endpoint_limit, org_limit, lease_ms, slack_ms, webhook_id
local lease = tonumber(ARGV[4])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
  -- Parked: NX keeps the time it first waited, so the longest-waiting goes first.
  redis.call('ZADD', KEYS[3], 'NX', ms(now), ARGV[6])
  redis.call('PEXPIRE', KEYS[3], math.ceil(lease + tonumber(ARGV[5])))
  return -1
end
redis.call('ZADD', KEYS[1], ms(now + lease), ARGV[1])
redis.call('ZADD', KEYS[2], ms(now + lease), ARGV[1])
extend_key(KEYS[1], tonumber(ARGV[5]))
extend_key(KEYS[2], tonumber(ARGV[5]))
redis.call('ZREM', KEYS[3], ARGV[6])
return 1
"""
)

_RELEASE_LUA = (
    _LUA_PRELUDE
    + """
-- KEYS[4]: the webhook's wake-pending flag. ARGV: token, ms to hold the flag (0: clear it).
-- Returns the parked webhook to wake, if any.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[2]) > 0 then
  redis.call('SET', KEYS[4], '1', 'PX', ARGV[2])
else
  redis.call('DEL', KEYS[4])
end
local parked = redis.call('ZPOPMIN', KEYS[3])
return parked[1]
"""
)

# One pair of Scripts per client; the weak reference never keeps a client alive.
_scripts: weakref.WeakKeyDictionary[redis.Redis, tuple[Script, Script]] = weakref.WeakKeyDictionary()


def _registered(client: redis.Redis) -> tuple[Script, Script]:
    scripts = _scripts.get(client)
    if scripts is None:
        scripts = (client.register_script(_ACQUIRE_LUA), client.register_script(_RELEASE_LUA))
        _scripts[client] = scripts
    return scripts


def _keys(webhook_id: str, org_id: str) -> list[str]:
    return [f"{SLOT_KEY_PREFIX}{webhook_id}", f"{ORG_SLOT_KEY_PREFIX}{org_id}", f"{PARKED_KEY_PREFIX}{org_id}"]


def _wake_key(webhook_id: str) -> str:
    return f"{WAKE_KEY_PREFIX}{webhook_id}"


def _to_ms(seconds: float, what: str) -> int:
    if not seconds > 0:
        raise ValueError(f"{what} must be > 0 seconds, got {seconds}")
    return max(1, math.ceil(seconds * 1000))


@dataclass(frozen=True)
class Slots:
    """What ``acquire_slots`` got: a token (both slots held), or why not."""

    token: str | None = None
    # The endpoint's slots are all held: their drains pick this work up.
    endpoint_busy: bool = False
    # The organization's slots are all held: the webhook waits in its parked set.
    parked: bool = False


def acquire_slots(
    client: redis.Redis,
    *,
    webhook_id: str,
    org_id: str,
    endpoint_limit: int,
    org_limit: int,
    lease_seconds: float,
) -> Slots:
    """Take one endpoint slot and one organization slot for ``lease_seconds``, or neither.

    If the organization has no slot free, the webhook is parked: the next release of one of
    the organization's slots returns it to be woken.
    """
    if endpoint_limit < 1 or org_limit < 1:
        raise ValueError(f"limits must be >= 1, got {endpoint_limit} and {org_limit}")
    lease_ms = _to_ms(lease_seconds, "lease_seconds")
    token = secrets.token_hex(TOKEN_BYTES)
    acquire, _ = _registered(client)
    taken = acquire(
        keys=_keys(webhook_id, org_id),
        args=[token, endpoint_limit, org_limit, lease_ms, KEY_EXPIRY_SLACK_MS, webhook_id],
        client=client,
    )
    if taken == 1:
        return Slots(token=token)
    return Slots(endpoint_busy=taken == 0, parked=taken == -1)


def release_slots(
    client: redis.Redis, *, webhook_id: str, org_id: str, token: str, hold_wake_seconds: float | None = None
) -> str | None:
    """Give both slots back and clear the webhook's wake-pending flag (or, with
    ``hold_wake_seconds``, keep it set that long: a wake is already due then), in one step;
    returns the organization's longest-parked webhook, to be woken.

    Releasing an expired or unknown token is a quiet no-op (but still hands a parked webhook
    over: the organization may have room).
    """
    hold_ms = 0 if hold_wake_seconds is None else _to_ms(hold_wake_seconds, "hold_wake_seconds")
    _, release = _registered(client)
    parked = release(keys=[*_keys(webhook_id, org_id), _wake_key(webhook_id)], args=[token, hold_ms], client=client)
    return parked.decode() if isinstance(parked, bytes) else parked


def mark_wake_pending(client: redis.Redis, webhook_id: str, ttl_seconds: float) -> bool:
    """Set the endpoint's wake-pending flag; True only for the caller that newly set it.

    The TTL bounds how long a lost wake-up can suppress the next one.
    """
    ttl_ms = _to_ms(ttl_seconds, "ttl_seconds")
    return bool(client.set(_wake_key(webhook_id), b"1", nx=True, px=ttl_ms))


def mark_wakes_pending(client: redis.Redis, webhook_ids: list[str], ttl_seconds: float) -> list[bool]:
    """``mark_wake_pending`` for several endpoints in one round trip."""
    ttl_ms = _to_ms(ttl_seconds, "ttl_seconds")
    pipe = client.pipeline(transaction=False)
    for webhook_id in webhook_ids:
        pipe.set(_wake_key(webhook_id), b"1", nx=True, px=ttl_ms)
    return [bool(reply) for reply in pipe.execute()]


def clear_wakes_pending(client: redis.Redis, webhook_ids: list[str]) -> None:
    client.delete(*[_wake_key(webhook_id) for webhook_id in webhook_ids])
