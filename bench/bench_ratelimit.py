"""Rate-limit checks per second against a real Redis, one at a time and pipelined.

Run from the project root: ``.venv/bin/python bench/bench_ratelimit.py [redis-url]``.
It flushes nothing; it uses and then resets its own organization ids in the given database.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import redis

# Run as a plain script from anywhere: make the project root importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deliveries import ratelimit

DEFAULT_URL = "redis://127.0.0.1:6379/15"
SECONDS_PER_RUN = 3.0
PIPELINE_DEPTH = 100
# Many orgs so the per-second limit rarely binds and each call does its full work (trim, add).
ORGS = [f"bench-org-{i}" for i in range(1_000)]
# Limits high enough that most checks grant: the expensive path, not the early refusal.
PER_SECOND = 1_000
PER_HOUR = 10_000


def bench_single(client: redis.Redis) -> tuple[int, int, float]:
    checks = granted = 0
    started = time.perf_counter()
    deadline = started + SECONDS_PER_RUN
    while time.perf_counter() < deadline:
        grant = ratelimit.acquire(client, ORGS[checks % len(ORGS)], 1, per_second=PER_SECOND, per_hour=PER_HOUR)
        checks += 1
        granted += grant.granted
    return checks, granted, time.perf_counter() - started


def bench_hot_org(client: redis.Redis) -> tuple[int, int, float]:
    """One org whose hour log is full (PER_HOUR members): every check trims, ranks and refuses."""
    org = ORGS[0]
    # Limits are arguments, not state: one call with a generous second fills the hour at once.
    ratelimit.acquire(client, org, PER_HOUR, per_second=PER_HOUR, per_hour=PER_HOUR)
    checks = granted = 0
    started = time.perf_counter()
    deadline = started + SECONDS_PER_RUN
    while time.perf_counter() < deadline:
        grant = ratelimit.acquire(client, org, 1, per_second=PER_SECOND, per_hour=PER_HOUR)
        checks += 1
        granted += grant.granted
    return checks, granted, time.perf_counter() - started


def bench_pipelined(client: redis.Redis) -> tuple[int, int, float]:
    script = ratelimit.acquire_script(client)
    args = ratelimit.acquire_args(1, per_second=PER_SECOND, per_hour=PER_HOUR)
    checks = granted = 0
    started = time.perf_counter()
    deadline = started + SECONDS_PER_RUN
    while time.perf_counter() < deadline:
        with client.pipeline(transaction=False) as pipe:
            for i in range(PIPELINE_DEPTH):
                org = ORGS[(checks + i) % len(ORGS)]
                script(ratelimit.rate_keys(org), args, client=pipe)
            replies = pipe.execute()
        checks += len(replies)
        granted += sum(ratelimit.grant_from_reply(reply).granted for reply in replies)
    return checks, granted, time.perf_counter() - started


def bench_ping(client: redis.Redis) -> tuple[int, int, float]:
    """The round-trip ceiling of one connection on this machine, for comparison."""
    checks = 0
    started = time.perf_counter()
    deadline = started + SECONDS_PER_RUN
    while time.perf_counter() < deadline:
        client.ping()
        checks += 1
    return checks, 0, time.perf_counter() - started


def evalsha_usec(client: redis.Redis) -> tuple[int, int]:
    """Server-wide EVALSHA calls and microseconds so far (read, never reset: Redis is shared)."""
    stats = client.info("commandstats").get("cmdstat_evalsha", {})
    return stats.get("calls", 0), stats.get("usec", 0)


def main() -> None:
    client = redis.Redis.from_url(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_URL)
    info = client.info("server")
    print(f"python {platform.python_version()} on {platform.platform()}")
    print(f"cpu: {platform.processor() or platform.machine()}, os.cpu_count()={os.cpu_count()}")
    print(f"redis {info['redis_version']}, redis-py {redis.__version__}")
    print(f"limits {PER_SECOND}/s {PER_HOUR}/h over {len(ORGS)} orgs, {SECONDS_PER_RUN:.0f} s each")
    runs = (
        ("PING baseline", bench_ping),
        ("one at a time", bench_single),
        (f"pipelined x{PIPELINE_DEPTH}", bench_pipelined),
        ("full hour, refused", bench_hot_org),
    )
    try:
        for name, run in runs:
            reset_all(client)
            calls_before, usec_before = evalsha_usec(client)
            checks, granted, elapsed = run(client)
            calls_after, usec_after = evalsha_usec(client)
            line = f"{name:>18}: {checks / elapsed:>9,.0f} checks/s"
            if calls_after > calls_before:
                server_us = (usec_after - usec_before) / (calls_after - calls_before)
                line += f", {server_us:.0f} us in Redis each, {granted:,} of {checks:,} granted"
            print(line)
    finally:
        reset_all(client)


def reset_all(client: redis.Redis) -> None:
    for org in ORGS:
        ratelimit.reset(client, org)


if __name__ == "__main__":
    main()
