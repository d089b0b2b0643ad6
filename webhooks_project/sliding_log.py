"""The Lua both sliding-log limiters share (delivery grants in ``deliveries.ratelimit``, API
event ingest in ``webhooks.throttling``): one sorted set per limited thing, one member per unit
counted, scored in milliseconds by the Redis server's clock.

``LUA_PRELUDE`` goes first in a script: it reads the clock (``now``) and defines ``ms`` (score
formatting) and ``append(key, k, chunk)``, which adds k members at one score and returns it.
"""

from __future__ import annotations

LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
-- Lua's default number-to-string keeps 14 digits (0.1 ms here); format scores explicitly.
local function ms(x) return string.format('%.3f', x) end
-- Members are '<score>:<i>'. Scores strictly increase per key, even if the clock repeats or
-- steps back, so members never collide; a stepped-back clock only makes the log stricter.
-- Added in chunks so one ZADD stays far below Lua's unpack() limit.
local function append(key, k, chunk)
  local score = now
  local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
  if newest[2] and tonumber(newest[2]) >= score then score = tonumber(newest[2]) + 0.001 end
  score = ms(score)
  local i = 1
  while i <= k do
    local last = math.min(i + chunk - 1, k)
    local args = {}
    for m = i, last do
      args[#args + 1] = score
      args[#args + 1] = score .. ':' .. m
    end
    redis.call('ZADD', key, unpack(args))
    i = last + 1
  end
  return score
end
"""
