"""Per-organization delivery limits: at most ``per_second`` in any second, ``per_hour`` in any hour.

The limits are promises to receivers, who count arrivals in *any* window, so both are sliding
logs: one member per granted delivery, scored in milliseconds by the Redis server's clock
(``TIME`` inside the script, never the caller's, so workers with skewed clocks agree).

Why sliding logs rather than the alternatives:

- A token bucket refilled at ``per_second`` lets a full bucket drain at the end of one second
  and a refill's worth through at the start of the next: up to 2x in a one-second window.
- An evenly spaced GCRA (one emission every ``1/per_second``) is exact and O(1), but it turns
  every burst into a drip: a fan-out of 10 deliveries at 10/s would take a full second instead
  of going out at once, and the hour would still need a log. A log is exact for any window and
  lets a burst of ``per_second`` go out at once.

Both windows read one sorted set per organization: the second's log is the newest slice of the
hour's log, counted with ``ZCOUNT`` in O(log N). Compared with one set per window this halves
the writes, the memory and the round trips inside the script (about 7 commands per call), and
makes "consume from both only what is granted" true by construction: a grant of k adds k
members to the one log, a refusal adds nothing.

A grant of k may be *paced*: its members are stamped ``spacing`` apart (now, now + spacing, …),
the moments its sends are planned for, so one call covers a run of sends one after another
(``deliveries.drain.RateGrants``) instead of one call for every send or two. The count stays
exact with stamps in the future: a window (now - W, +inf) is counted, so every window a new
member falls in holds at most what that count allows. Members stamped for sends that never
went out may be given back (removed) in the next call: a send not made never reaches a receiver.
Members are named by a counter of the organization's grants (a second key), never by their
score, so paced stamps and a stepped-back clock never make two grants one member.

Per call: the members given back removed, one trim of expired members (``ZREMRANGEBYSCORE``),
``ZCARD``, ``ZCOUNT``, the k granted members added, and at most two ``ZRANGE`` by rank to
compute the wait; nothing scans the log. It holds at most ``per_hour`` members (10,000 are
about 1 MB).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis.commands.core import Script

from webhooks_project.sliding_log import LUA_PRELUDE

KEY_PREFIX = "whk:rl:"
# The counter that names an organization's grants (the log's members).
SEQUENCE_KEY_PREFIX = "whk:rls:"

SECOND_WINDOW_MS = 1_000
HOUR_WINDOW_MS = 3_600_000
# Sends leave a little after the check and jitter shifts arrivals: counting grants over 1.05 s
# keeps any one second the receiver counts within the limit despite up to 50 ms of skew.
SECOND_WINDOW_GUARD_MS = 50
# The same skew applies to the hour; 50 ms out of an hour costs nothing, so guard it too.
HOUR_WINDOW_GUARD_MS = SECOND_WINDOW_GUARD_MS
# The key outlives its newest member's window by this much, so expiry never races the trim.
KEY_EXPIRY_SLACK_MS = 1_000
# Members are added in chunks so one ZADD stays far below Lua's unpack() limit (~8,000 values).
ZADD_CHUNK = 1_000

_ACQUIRE_LUA = (
    LUA_PRELUDE
    + """
-- KEYS: the org's grant log, the counter naming its members. ARGV: n, per_second, per_hour,
-- second_window_ms, hour_window_ms, expiry_slack_ms, zadd_chunk, spacing_ms, then the members
-- given back (granted, never sent).
local key = KEYS[1]
local n = tonumber(ARGV[1])
local per_second = tonumber(ARGV[2])
local per_hour = tonumber(ARGV[3])
local second_window = tonumber(ARGV[4])
local hour_window = tonumber(ARGV[5])
local chunk = tonumber(ARGV[7])
local spacing = tonumber(ARGV[8])

if #ARGV > 8 then redis.call('ZREM', key, unpack(ARGV, 9)) end
-- A grant counts in a window while its score is in (now - window, now]; one stamped ahead of
-- now (a paced grant) counts in every window from now on that holds its stamp.
redis.call('ZREMRANGEBYSCORE', key, '-inf', ms(now - hour_window))
local in_hour = redis.call('ZCARD', key)
local in_second = redis.call('ZCOUNT', key, '(' .. ms(now - second_window), '+inf')

local k = math.min(n, per_second - in_second, per_hour - in_hour)
if k < 0 then k = 0 end

local first = 0
if k > 0 then
  first = redis.call('INCRBY', KEYS[2], k) - k + 1
  local i = 0
  while i < k do
    local last = math.min(i + chunk, k) - 1
    local args = {}
    for m = i, last do
      args[#args + 1] = ms(now + m * spacing)
      args[#args + 1] = string.format('%d', first + m)
    end
    redis.call('ZADD', key, unpack(args))
    i = last + 1
  end
  -- The keys outlive the newest stamp's hour (another grant's, paced further ahead, perhaps).
  local newest = tonumber(redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')[2])
  local ttl = math.ceil(newest - now + hour_window + tonumber(ARGV[6]))
  redis.call('PEXPIRE', key, ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end

-- Time until a window holding `count` grants has room for one more: the grant whose expiry
-- brings the count below `limit`. The window's grants are the newest `count` of the log, so
-- that grant's rank (0-based, oldest first) is total - limit.
local function wait_ms(total, count, limit, window)
  if count < limit then return 0 end
  local entry = redis.call('ZRANGE', key, total - limit, total - limit, 'WITHSCORES')
  return tonumber(entry[2]) + window - now
end

local wait = 0
if k < n then
  local total = in_hour + k
  wait = math.max(
    wait_ms(total, in_second + k, per_second, second_window),
    wait_ms(total, total, per_hour, hour_window)
  )
end
-- Integers survive the reply: microseconds, rounded up so the caller never wakes early.
return {k, math.ceil(wait * 1000), first}
"""
)

# One Script per client: register_script only hashes the text, the server loads it on first
# use (EVALSHA, falling back to SCRIPT LOAD), and the weak reference keeps no client alive.
_scripts: weakref.WeakKeyDictionary[redis.Redis, Script] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Grant:
    granted: int
    wait_seconds: float  # until one more could be granted; 0.0 when all that was asked was
    # The granted members are named first_member, first_member + 1, …, stamped in that order.
    first_member: int = 0

    @property
    def members(self) -> list[str]:
        """The log's members of this grant, in the order their stamps go (``give_back`` takes them)."""
        return [str(self.first_member + i) for i in range(self.granted)]


def acquire_script(client: redis.Redis) -> Script:
    """The acquire script registered on ``client``; call it with ``client=pipeline`` to batch."""
    script = _scripts.get(client)
    if script is None:
        script = client.register_script(_ACQUIRE_LUA)
        _scripts[client] = script
    return script


def rate_key(org_id: str) -> str:
    """The organization's grant log."""
    return f"{KEY_PREFIX}{org_id}"


def rate_keys(org_id: str) -> list[str]:
    """The script's keys: the organization's grant log and the counter naming its members."""
    return [rate_key(org_id), f"{SEQUENCE_KEY_PREFIX}{org_id}"]


def acquire_args(
    n: int, *, per_second: int, per_hour: int, spacing_seconds: float = 0.0, give_back: Sequence[str] = ()
) -> list[float | str]:
    """The script's arguments, validated: pass them with ``rate_keys(org_id)`` as keys."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if per_second < 1 or per_hour < 1:
        raise ValueError(f"limits must be >= 1, got {per_second}/s and {per_hour}/h")
    if spacing_seconds < 0:
        raise ValueError(f"spacing must be >= 0, got {spacing_seconds}")
    if len(give_back) > ZADD_CHUNK:
        raise ValueError(f"at most {ZADD_CHUNK} members are given back at once, got {len(give_back)}")
    return [
        n,
        per_second,
        per_hour,
        SECOND_WINDOW_MS + SECOND_WINDOW_GUARD_MS,
        HOUR_WINDOW_MS + HOUR_WINDOW_GUARD_MS,
        KEY_EXPIRY_SLACK_MS,
        ZADD_CHUNK,
        # Whole microseconds, as the scores keep them.
        round(spacing_seconds * 1_000_000) / 1_000,
        *give_back,
    ]


def grant_from_reply(reply: list[int]) -> Grant:
    granted, wait_us, first = reply
    return Grant(granted=int(granted), wait_seconds=int(wait_us) / 1_000_000, first_member=int(first))


def acquire(
    client: redis.Redis,
    org_id: str,
    n: int,
    *,
    per_second: int,
    per_hour: int,
    spacing_seconds: float = 0.0,
    give_back: Sequence[str] = (),
) -> Grant:
    """Atomically take up to ``n`` deliveries from both of ``org_id``'s windows.

    Grants the largest k <= n both windows allow now and consumes exactly k from each. When
    k < n, ``wait_seconds`` is how long until one more could be granted (the later of the
    windows that are full); sleeping that long and asking again is the intended loop.

    With ``spacing_seconds``, the k are stamped that far apart, from now: the i-th send is
    counted at now + i * spacing, and must leave then (``deliveries.drain.RateGrants``).
    ``give_back`` first removes members of earlier grants whose sends were never made.
    """
    args = acquire_args(
        n, per_second=per_second, per_hour=per_hour, spacing_seconds=spacing_seconds, give_back=give_back
    )
    if n == 0 and not give_back:
        return Grant(granted=0, wait_seconds=0.0)
    reply = acquire_script(client)(keys=rate_keys(org_id), args=args, client=client)
    return grant_from_reply(reply)


def give_back(client: redis.Redis, org_id: str, members: Sequence[str]) -> None:
    """Remove members of ``org_id``'s grants whose sends were never made (a drain that stops early)."""
    if members:
        client.zrem(rate_key(org_id), *members)


def reset(client: redis.Redis, org_id: str) -> None:
    """Forget everything granted to ``org_id`` (tests and admin)."""
    client.delete(*rate_keys(org_id))
