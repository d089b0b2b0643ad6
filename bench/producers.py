"""How the scenarios produce their load: all at once from forked processes (throughput, floor),
or paced at a steady rate with each event's way to the receiver timed (latency, isolation)."""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from typing import Any

import harness
from common import State
from harness import percentile
from receivers import receiver_get
from service import DATA
from workers import diagnose_stall

# Producers of the throughput run: one process emits ~200/s here, which would cap the run.
EMITTERS = int(os.environ.get("BENCH_EMITTERS", "4"))
# Seconds the forked producers get to reach the starting line before they are released.
FORK_SETTLE_SECONDS = 0.5
# Seconds between checks that a forked producer which has not reported is still alive.
REPORT_POLL_SECONDS = 1.0
# Seconds to wait for a forked producer to exit once it has reported.
CHILD_JOIN_SECONDS = 10
# Seconds paced events may take to arrive once the last was emitted, without progress.
ARRIVAL_STALL_SECONDS = 10


def run_forked(shares: list[list[int]], work: Callable[[list[int]], None]) -> tuple[float, float]:
    """Run ``work(share)`` in one forked process per share, all released at once.

    Returns (time.time() when the first began, seconds until the last finished).
    """
    import multiprocessing

    from django.db import connections

    connections.close_all()  # each child opens its own
    context = multiprocessing.get_context("fork")
    go = context.Event()
    results = context.Queue()

    def child(share: list[int]) -> None:
        report: dict[str, object] = {}
        try:
            go.wait()
            report["first"] = time.time()
            work(share)
            report["last"] = time.time()
        except Exception as exc:  # noqa: BLE001 - reported to the parent
            report["error"] = repr(exc)
        results.put(report)

    # Daemons: an interrupted bench does not wait for its producers to finish.
    children = [context.Process(target=child, args=(share,), daemon=True) for share in shares]
    for process in children:
        process.start()
    time.sleep(FORK_SETTLE_SECONDS)  # every child is waiting on the event
    go.set()
    reports: list[dict] = []
    while len(reports) < len(children):
        try:
            reports.append(results.get(timeout=REPORT_POLL_SECONDS))
        except queue.Empty:
            if not any(process.is_alive() for process in children) and results.empty():
                raise RuntimeError("a forked producer died without a report") from None
    for process in children:
        process.join(CHILD_JOIN_SECONDS)
    errors = [r["error"] for r in reports if r.get("error")]
    if errors:
        raise RuntimeError(f"a forked producer failed: {errors[0]}")
    first = min(r["first"] for r in reports)
    return first, max(r["last"] for r in reports) - first


def emit_in_parallel(org_ids: list[str], count: int, processes: int) -> tuple[float, float]:
    from events import emit  # after django.setup(): run.py imports this module before it

    """Emit ``count`` events round-robin over ``org_ids`` from ``processes`` forked producers."""

    def work(indexes: list[int]) -> None:
        for i in indexes:
            emit(org_ids[i % len(org_ids)], "threat.detected", DATA)

    return run_forked([list(range(i, count, processes)) for i in range(processes)], work)


def paced_latency(
    state: State, org: Any, rate: float, seconds: float, *, on_tick: Callable[[], None] | None = None
) -> dict:
    from events import emit  # after django.setup(): run.py imports this module before it

    """Emit at ``rate``/s for ``seconds``; return latency percentiles (ms) emit -> arrival."""
    count = int(rate * seconds)
    sent: dict[str, float] = {}
    returned: dict[str, float] = {}
    started = time.perf_counter()
    for i in range(count):
        target = started + i / rate
        delay = target - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        emitted_at = time.time()
        event = emit(org, "threat.detected", DATA)
        sent[event.id] = emitted_at
        returned[event.id] = time.time()
        if on_tick is not None and i % int(rate) == 0:
            on_tick()
    achieved = count / (time.perf_counter() - started)

    if not harness.wait_for_count(
        lambda: sum(1 for e in receiver_get(state, "/arrivals")["arrivals"] if e in sent),
        count,
        stall_seconds=ARRIVAL_STALL_SECONDS,
    ):
        diagnose_stall(state, "latency")
    arrivals = receiver_get(state, "/arrivals")["arrivals"]
    latencies = [(arrivals[e][0] - t) * 1000 for e, t in sent.items() if e in arrivals]
    duplicates = sum(len(arrivals[e]) - 1 for e in sent if e in arrivals)
    missing = count - len(latencies)
    if not latencies:
        return {"count": count, "missing": missing, "achieved": achieved}
    return {
        "count": count,
        "missing": missing,
        "duplicates": duplicates,
        "achieved": achieved,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "max": max(latencies),
        "stages": latency_stages(sent, returned, arrivals),
    }


def latency_stages(sent: dict[str, float], returned: dict[str, float], arrivals: dict[str, list[float]]) -> str:
    """Where the time went, per event: emit (the event and its deliveries committed, the wake-up
    sent) -> first attempt began (``requested_at``) -> arrival at the receiver."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.event_id, extract(epoch FROM a.requested_at) FROM deliveries_delivery d"
            " JOIN deliveries_attempt a ON a.delivery_id = d.id AND a.number = 1 WHERE d.event_id = ANY(%s)",
            [list(sent)],
        )
        rows = [(e, float(r)) for e, r in cursor.fetchall() if e in arrivals]
    if not rows:
        return "no attempts recorded"
    stages = {
        "emit()": [(returned[e] - sent[e]) * 1000 for e, _r in rows],
        "emit returned -> POST began": [(r - returned[e]) * 1000 for e, r in rows],
        "POST began -> arrived": [(arrivals[e][0] - r) * 1000 for e, r in rows],
    }
    return "; ".join(
        f"{name} p50 {percentile(v, 50):.1f} / p99 {percentile(v, 99):.1f} ms" for name, v in stages.items()
    )


def latency_line(stats: dict) -> str:
    """One report line of ``paced_latency``'s result (and its stages below it)."""
    if "p50" not in stats:
        return f"no arrivals recorded ({stats['missing']} missing)"
    return (
        f"p50 {stats['p50']:.1f} ms, p95 {stats['p95']:.1f} ms, p99 {stats['p99']:.1f} ms, max {stats['max']:.1f} ms"
        f" over {stats['count']:,} events at {stats['achieved']:.1f} ev/s achieved;"
        f" {stats['missing']} missing, {stats['duplicates']} duplicate arrivals\n  stages: {stats['stages']}"
    )
