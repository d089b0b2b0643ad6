"""The floor: the simplest Celery design there is (bench/floor_app.py: one task per signed POST,
no database, prefork x2), run on the same receiver right after the throughput run so that the
ratio of the two says what the service's design costs on this machine at this moment."""

from __future__ import annotations

import json
import os
import sys
import time

import harness
from common import STALL_SECONDS, State, cpu_per_item, cpu_per_item_line, cpu_shares, out, service_side_us
from harness import ROOT, CpuMeter, Proc
from producers import EMITTERS, run_forked
from receivers import nginx_pids
from service import DATA, REDIS_URL, redis_client

FLOOR_TASKS = 10_000
# The floor's processes: two, as the service runs two worker processes here (BENCH_WORKERS).
FLOOR_CONCURRENCY = 2
# Seconds the floor worker may take to run its first (probe) task.
READY_TIMEOUT = 60
READY_POLL_SECONDS = 0.1


def run(state: State) -> None:
    out()
    out(
        "== 2. Floor: one Celery task per signed POST, no database"
        f" (prefork x{FLOOR_CONCURRENCY}), {FLOOR_TASKS:,} tasks =="
    )
    out("before it, " + harness.cpu_probe())
    client = redis_client()
    client.flushdb()
    env = dict(os.environ, BENCH_FLOOR_BROKER=REDIS_URL)
    env.pop("DJANGO_SETTINGS_MODULE")  # else Celery's Django fix-up loads the service into the floor
    worker = Proc(
        "floor-worker",
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "floor_app",
            "worker",
            "--pool",
            "prefork",
            "--concurrency",
            str(FLOOR_CONCURRENCY),
            "--loglevel",
            "WARNING",
            "--without-gossip",
            "--without-mingle",
            "-n",
            "floor@%h",
        ],  # fmt: skip
        env,
        cwd=ROOT / "bench",
    )
    try:
        os.environ["BENCH_FLOOR_BROKER"] = REDIS_URL
        import floor_app

        # Ready when a probe task has run (the WARNING log level prints no "ready").
        url = f"http://127.0.0.1:{state.nginx_port}/floor"
        body = json.dumps({"id": "evt_floor", "event": "threat.detected", "data": DATA})
        # Through a connection of its own, closed at once: the forked producers open their own,
        # and a second run of the floor (BENCH_ROUNDS) finds the app's pool as the first did.
        with floor_app.app.connection_for_write() as connection:
            floor_app.post.apply_async((url, body, "whsec_floor", "dlv_probe"), connection=connection)
        if not harness.wait_until(
            lambda: client.get(floor_app.DONE_KEY), timeout=READY_TIMEOUT, interval=READY_POLL_SECONDS
        ):
            raise RuntimeError(f"floor worker did not run its probe task (see {worker.log_path})")
        client.delete(floor_app.DONE_KEY)
        meter = CpuMeter(
            {
                f"floor worker ({FLOOR_CONCURRENCY} children)": lambda: [worker.pid, *harness.children_of(worker.pid)],
                "redis-server": lambda: harness.pids_named("redis-server"),
                "receiver (nginx)": lambda: nginx_pids(state),
            }
        )
        meter.start()

        def enqueue(indexes: list[int]) -> None:
            for i in indexes:
                floor_app.post.delay(url, body, "whsec_floor", f"dlv_{i}")

        shares = [list(range(i, FLOOR_TASKS, EMITTERS)) for i in range(EMITTERS)]
        started, enqueued = run_forked(shares, enqueue)

        def finished() -> int:
            return sum(int(v or 0) for v in client.mget(floor_app.DONE_KEY, floor_app.FAILED_KEY))

        ok = harness.wait_for_count(finished, FLOOR_TASKS, stall_seconds=STALL_SECONDS)
        elapsed = time.time() - started
        used = meter.stop()
        failed = int(client.get(floor_app.FAILED_KEY) or 0)
        if not ok:
            out(f"floor stalled (done {client.get(floor_app.DONE_KEY)}, failed {failed}; see {worker.log_path})")
            return
        rate = FLOOR_TASKS / elapsed
        state.floor.append(rate)
        state.rss["floor worker"] = harness.peak_rss_mb(worker.pid)
        out(
            f"{FLOOR_TASKS:,} POSTs in {elapsed:.2f} s = {rate:,.0f} POSTs/s ({failed} failed;"
            f" enqueueing took {enqueued:.2f} s, {EMITTERS} producer processes)"
        )
        out("  CPU during the run (% of one core): " + cpu_shares(used, elapsed))
        per = cpu_per_item(used, FLOOR_TASKS)
        out("  CPU per POST: " + cpu_per_item_line(per))
        state.floor_cpu_us.append(service_side_us(per))
    finally:
        worker.stop()
