"""Latency: one webhook, events emitted at a steady rate; each event's time from emit() to its
arrival at the receiver, and where that time went."""

from __future__ import annotations

import os
import time

from common import State, cpu_shares, figure, out
from producers import latency_line, paced_latency
from service import make_org, redis_client
from workers import worker_meter

LATENCY_RATE = 100.0
LATENCY_SECONDS = float(os.environ.get("BENCH_LATENCY_SECONDS", "30"))
TARGET_P99_MS = 100


def run(state: State) -> None:
    out()
    out(f"== 3. Latency: {LATENCY_RATE:.0f} events/s for {LATENCY_SECONDS:.0f} s, 1 webhook, emit -> arrival ==")
    org, _ = make_org("bench-latency", [f"http://127.0.0.1:{state.receiver_port}/lat/0"])
    client = redis_client()
    depth = [0]

    def sample() -> None:
        depth[0] = max(depth[0], client.llen("webhooks"))

    meter = worker_meter(state)
    meter.start()
    started = time.monotonic()
    stats = paced_latency(state, org, LATENCY_RATE, LATENCY_SECONDS, on_tick=sample)
    used = meter.stop()
    out(latency_line(stats))
    out(f"  broker queue depth (peak, sampled each second): {depth[0]} messages")
    out("  CPU during it (% of one core): " + cpu_shares(used, time.monotonic() - started))
    p99 = stats.get("p99")
    figure(
        state,
        "latency p99 @100 ev/s",
        p99,
        "ms",
        "< 100 ms",
        p99 is not None and p99 < TARGET_P99_MS and not stats["missing"],
    )
