"""The service's Celery workers as the benchmark runs them (the Procfile's ``worker:`` line), and
what watches them: the CPU meter of a run, py-spy profiles (``--profile``), and the diagnosis
printed when a run stops making progress."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import harness
from common import State, out
from harness import LOGS, RESULTS, ROOT, CpuMeter, Proc
from service import REDIS_URL, consumers_of_our_db, pg_backends, redis_client, service_env

WORKER_PROCESSES = int(os.environ.get("BENCH_WORKERS", "2"))
# Seconds a worker may take to print "ready".
READY_TIMEOUT = 60
PY_SPY = ROOT / ".venv" / "bin" / "py-spy"
# Samples per second of each profiled worker.
PROFILE_RATE = 250
# Seconds py-spy takes to attach, and at most to write its profile once interrupted.
PROFILER_ATTACH_SECONDS = 1.0
PROFILER_EXIT_TIMEOUT = 30


def start_workers(state: State) -> None:
    env = service_env()
    foreign = consumers_of_our_db(set())
    if foreign:
        out(f"WARNING: other processes consume from {REDIS_URL} and will take the bench's messages: {foreign}")
    command = harness.procfile_command("worker", env)
    if command[0] == "celery":
        command = [sys.executable, "-m", "celery", *command[1:]]
    for i in range(WORKER_PROCESSES):
        state.workers.append(Proc(f"worker{i + 1}", [*command, "-n", f"bench{i + 1}@%h"], env))
    for worker in state.workers:
        worker.wait_for_log(r"ready\.", timeout=READY_TIMEOUT)
    shown = " ".join(harness.procfile_command("worker", env))
    pids = ", ".join(str(w.pid) for w in state.workers)
    out(f"workers: {WORKER_PROCESSES} processes (pids {pids}) of the Procfile's `{shown}`")


def stop_workers(state: State) -> None:
    for i, worker in enumerate(state.workers):
        name = f"worker{i + 1}"  # the workers are started twice: the larger peak counts
        state.rss[name] = max(state.rss.get(name, 0.0), harness.peak_rss_mb(worker.pid))
    for worker in state.workers:
        worker.stop()
    state.workers = []


def worker_meter(state: State, receiver: Callable[[State], list[int]] | None = None) -> CpuMeter:
    """A CPU meter of the workers, the bench database's backends, Redis, and the receiver."""
    groups = {f"worker{i + 1}": (lambda w=w: [w.pid]) for i, w in enumerate(state.workers)}
    groups["postgres (bench db backends)"] = pg_backends
    groups["redis-server"] = lambda: harness.pids_named("redis-server")
    if receiver is not None:
        groups["receiver (nginx)"] = lambda: receiver(state)
    return CpuMeter(groups)


def diagnose_stall(state: State, name: str) -> None:
    """What the workers, PostgreSQL and the broker were doing when progress stopped."""
    from django.db import connection

    client = redis_client()
    out(f"  STALL in {name}: broker {client.llen('webhooks')} queued, {client.hlen('unacked')} unacked")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid, state, wait_event_type, wait_event, now() - xact_start, left(query, 100)"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND (state <> 'idle' OR wait_event_type = 'Lock')"
        )
        for row in cursor.fetchall():
            out(f"  postgres backend {row}")
    for i, worker in enumerate(state.workers):
        if not worker.alive():
            out(f"  worker{i + 1} (pid {worker.pid}) has EXITED with {worker.popen.returncode}")
            continue
        if not PY_SPY.exists():
            continue
        dump = subprocess.run([str(PY_SPY), "dump", "--pid", str(worker.pid)], capture_output=True, text=True)
        target = LOGS / f"stall-{name}-worker{i + 1}.txt"
        target.write_text(dump.stdout + dump.stderr)
        tops = re.findall(r"Thread \d+ \((\w+(?:\+gil)?)\).*\n\s+(\S+ \([^)]*\))", dump.stdout)
        summary: dict[str, int] = {}
        for thread_state, frame in tops:
            key = f"{thread_state} {frame}"
            summary[key] = summary.get(key, 0) + 1
        out(f"  worker{i + 1} threads (py-spy dump in {target.name}): {summary}")


def start_profilers(state: State, name: str) -> list[subprocess.Popen]:
    if not PY_SPY.exists():
        out("  (--profile: py-spy not installed: .venv/bin/pip install py-spy)")
        return []
    profilers = []
    for i, worker in enumerate(state.workers):
        target = RESULTS / f"pyspy-{name}-worker{i + 1}.txt"
        profilers.append(
            subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(worker.pid),
                    "--rate",
                    str(PROFILE_RATE),
                    "--format",
                    "raw",
                    "--gil",
                    "--nonblocking",
                    "-o",
                    str(target),
                ],  # fmt: skip
                stdout=subprocess.DEVNULL,
                stderr=(LOGS / f"pyspy-worker{i + 1}.log").open("wb"),
                start_new_session=True,
            )
        )
    time.sleep(PROFILER_ATTACH_SECONDS)
    return profilers


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    for profiler in profilers:
        profiler.send_signal(signal.SIGINT)
    for profiler in profilers:
        try:
            profiler.wait(PROFILER_EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            profiler.kill()
    if profilers:
        subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "pyspy_summary.py"),
                *map(str, RESULTS.glob("pyspy-throughput-worker*.txt")),
            ],
            check=False,
        )
