"""Cluster-wide endpoint slots and the wake-pending flag.

A slot is a lease on one of an endpoint's ``limit`` concurrent drain loops, held across every
worker process and machine. Each endpoint has one sorted set of lease tokens scored by their
expiry on the Redis server's clock (``TIME`` inside the scripts, so worker clocks never
matter). Expired leases are dropped before anything is counted or renewed, so a killed
worker's slot frees itself after at most one lease.

The wake-pending flag coalesces wake-up messages: whoever sets it (``SET NX``) sends the one
message; everyone else sees it already set and sends nothing until the drain loop clears it.
"""

from __future__ import annotations

import math
import secrets
import weakref

import redis
from redis.commands.core import Script

SLOT_KEY_PREFIX = "whk:slot:"
WAKE_KEY_PREFIX = "whk:wake:"

# A slot set outlives its longest lease by this much, so key expiry never races the trim.
KEY_EXPIRY_SLACK_MS = 1_000
# 128 random bits: a token is never guessed or reused by another holder.
TOKEN_BYTES = 16

# Shared by both scripts: drop expired leases, then keep the key alive as long as its
# longest remaining lease (a set that becomes empty is deleted by Redis itself).
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
-- Lua's default number-to-string keeps 14 digits (0.1 ms here); format scores explicitly.
local function ms(x) return string.format('%.3f', x) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ms(now))
local function extend_key(slack)
  local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(last[2]) - now + slack))
  end
end
"""

_ACQUIRE_LUA = (
    _LUA_PRELUDE
    + """
-- ARGV: token, limit, lease_ms, slack_ms
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ms(now + tonumber(ARGV[3])), ARGV[1])
extend_key(tonumber(ARGV[4]))
return 1
"""
)

_RENEW_LUA = (
    _LUA_PRELUDE
    + """
-- ARGV: token, lease_ms, slack_ms
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], 'XX', ms(now + tonumber(ARGV[2])), ARGV[1])
extend_key(tonumber(ARGV[3]))
return 1
"""
)

# One pair of Scripts per client; the weak reference never keeps a client alive.
_scripts: weakref.WeakKeyDictionary[redis.Redis, tuple[Script, Script]] = weakref.WeakKeyDictionary()


def _registered(client: redis.Redis) -> tuple[Script, Script]:
    scripts = _scripts.get(client)
    if scripts is None:
        scripts = (client.register_script(_ACQUIRE_LUA), client.register_script(_RENEW_LUA))
        _scripts[client] = scripts
    return scripts


def _slot_key(webhook_id: str) -> str:
    return f"{SLOT_KEY_PREFIX}{webhook_id}"


def _wake_key(webhook_id: str) -> str:
    return f"{WAKE_KEY_PREFIX}{webhook_id}"


def _to_ms(seconds: float, what: str) -> int:
    if not seconds > 0:
        raise ValueError(f"{what} must be > 0 seconds, got {seconds}")
    return max(1, math.ceil(seconds * 1000))


def acquire_slot(client: redis.Redis, webhook_id: str, *, limit: int, lease_seconds: float) -> str | None:
    """Take one of the endpoint's ``limit`` slots for ``lease_seconds``; None when all are held.

    The returned token is what ``renew_slot`` and ``release_slot`` need.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    lease_ms = _to_ms(lease_seconds, "lease_seconds")
    token = secrets.token_hex(TOKEN_BYTES)
    acquire, _ = _registered(client)
    taken = acquire(
        keys=[_slot_key(webhook_id)],
        args=[token, limit, lease_ms, KEY_EXPIRY_SLACK_MS],
        client=client,
    )
    return token if taken else None


def renew_slot(client: redis.Redis, webhook_id: str, token: str, lease_seconds: float) -> bool:
    """Extend a held lease to ``lease_seconds`` from now; False if it expired or was released.

    A False means the slot may already belong to someone else: stop draining.
    """
    lease_ms = _to_ms(lease_seconds, "lease_seconds")
    _, renew = _registered(client)
    renewed = renew(keys=[_slot_key(webhook_id)], args=[token, lease_ms, KEY_EXPIRY_SLACK_MS], client=client)
    return bool(renewed)


def release_slot(client: redis.Redis, webhook_id: str, token: str) -> None:
    """Give the slot back; releasing an expired or unknown token is a quiet no-op."""
    client.zrem(_slot_key(webhook_id), token)


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


def clear_wake_pending(client: redis.Redis, webhook_id: str) -> None:
    client.delete(_wake_key(webhook_id))
