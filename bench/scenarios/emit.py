"""Emit rate, with no worker running: emit() in process, from one thread and from several (with
the broker's send alone for comparison), emit_many() in batches, then ``POST /ui/api/events``
and ``POST /ui/api/events/batch`` through gunicorn."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import harness
from common import State, figure, out
from harness import RESULTS, ROOT, CpuMeter, Proc
from service import DATA, make_org, pg_backends, service_env

EMIT_COUNT = 5_000
# ... or as many as fit in this many seconds, whichever comes first (slow disks, busy machines).
EMIT_SECONDS = 10.0
EMIT_THREADS = 8
TARGET = 2_000  # events/s
# Emits before the timing starts: connections opened, caches filled.
WARM_UP_EMITS = 50
# emit_many(): events per call (one subscribed webhook each), and how many in all (or
# EMIT_SECONDS of them), after a few calls' warm-up.
BATCH_EVENTS = 100
BATCH_TOTAL = 50_000
BATCH_TARGET = 5_000  # events/s
WARM_UP_BATCHES = 5
REST_BATCH_TARGET = 2_000  # events/s
# Broker sends timed alone.
SEND_TASKS = 1_000
REST_SECONDS = 10
REST_CONCURRENCY = 8
# The web process as the REST figure is measured (the Procfile's default).
WEB_CONCURRENCY = 2
# Requests before the timing starts: each gunicorn worker's imports and connections warmed.
WARM_UP_REQUESTS = 20
WEB_READY_TIMEOUT = 30
REQUEST_TIMEOUT = 10
# As many requests as ab may send: its -t (seconds) ends the run.
AB_MAX_REQUESTS = 10_000_000
CLIENT_TIMEOUT = 30


def run(state: State) -> None:
    from events import emit, emit_many  # after django.setup(): run.py imports this module before it
    from webhooks import services as webhook_services
    from webhooks_project.celery import app as celery_app

    out()
    out("== 5. Emit rate (workers stopped) ==")
    org, _ = make_org("bench-emit", ["http://127.0.0.1:9/emit"])
    for _ in range(WARM_UP_EMITS):
        emit(org, "threat.detected", DATA)
    count, elapsed, cpu = _timed(lambda: emit(org, "threat.detected", DATA), 1, EMIT_COUNT)
    rate = count / elapsed
    out(
        f"emit() in process: {count:,} emits in {elapsed:.2f} s = {rate:,.0f} events/s"
        f" ({elapsed / count * 1e6:.0f} us each, {cpu / count * 1e6:.0f} us of it CPU in this process;"
        " includes storing the event and its deliveries, the durable commit, and waking the webhooks)"
    )
    figure(state, "emit() in process", rate, "events/s", ">= 2,000/s", rate >= TARGET)
    # The broker's share: the same send_task alone.
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(SEND_TASKS):
        celery_app.send_task("bench.null", args=["evt_x"], queue="bench-null")
    send_us = (time.perf_counter() - started) / SEND_TASKS * 1e6
    send_cpu_us = (time.process_time() - cpu_started) / SEND_TASKS * 1e6
    out(f"  of which the broker send alone (send_task): {send_us:.0f} us each, {send_cpu_us:.0f} us of it CPU")
    # The same from several threads: commits of concurrent transactions share WAL flushes.
    threaded = emit_threaded(org, EMIT_COUNT, EMIT_THREADS, EMIT_SECONDS)
    out(f"emit() in process from {EMIT_THREADS} threads: {threaded:,.0f} events/s")
    figure(state, f"emit() in process, {EMIT_THREADS} threads", threaded, "events/s", "(info)", None)
    # Batches: one query string and one commit for BATCH_EVENTS events.
    batch = [{"event": "threat.detected", "data": DATA}] * BATCH_EVENTS
    for _ in range(WARM_UP_BATCHES):
        emit_many(org, batch)
    count, elapsed, cpu = _timed(lambda: emit_many(org, batch), BATCH_EVENTS, BATCH_TOTAL)
    rate = count / elapsed
    out(
        f"emit_many() in process, {BATCH_EVENTS} events per call: {count:,} events in {elapsed:.2f} s"
        f" = {rate:,.0f} events/s ({elapsed / count * BATCH_EVENTS * 1e3:.1f} ms a call,"
        f" {cpu / count * 1e6:.0f} us of CPU an event in this process)"
    )
    figure(state, f"emit_many() in process, {BATCH_EVENTS}/call", rate, "events/s", ">= 5,000/s", rate >= BATCH_TARGET)

    _, key = webhook_services.api_key_create(organization=org)
    port = harness.free_port()
    env = service_env(PORT=str(port), WEB_CONCURRENCY=str(WEB_CONCURRENCY))
    command = harness.procfile_command("web", env)
    gunicorn = Proc("gunicorn", [str(ROOT / ".venv" / "bin" / command[0]), *command[1:]], env)
    try:
        harness.wait_for_port(port, timeout=WEB_READY_TIMEOUT)
        url = f"http://127.0.0.1:{port}/ui/api/events"
        body = json.dumps({"event": "threat.detected", "data": DATA}).encode()
        for _ in range(WARM_UP_REQUESTS):
            request = urllib.request.Request(
                url, data=body, headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT) as response:
                assert response.status == 202, response.status
        rest_figure(state, gunicorn, url, body, key, 1, "POST /ui/api/events", None)
        batch_body = json.dumps({"events": batch}).encode()
        rest_figure(
            state, gunicorn, f"{url}/batch", batch_body, key, BATCH_EVENTS,
            f"POST /ui/api/events/batch, {BATCH_EVENTS}/request", REST_BATCH_TARGET,
        )  # fmt: skip
    finally:
        gunicorn.stop()


def rest_figure(
    state: State,
    gunicorn: Proc,
    url: str,
    body: bytes,
    key: str,
    events_per_request: int,
    name: str,
    target: int | None,
) -> None:
    """REST_SECONDS of concurrent POSTs of ``body`` to ``url``: events/s, and the CPU it took."""
    meter = CpuMeter(
        {
            "gunicorn": lambda: [gunicorn.pid, *harness.children_of(gunicorn.pid)],
            "postgres (bench db backends)": pg_backends,
        }
    )
    meter.start()
    requests_per_second, failed, client = rest_load(url, body, key)
    used = meter.stop()
    rate = requests_per_second * events_per_request
    out(
        f"{name} via gunicorn (WEB_CONCURRENCY={WEB_CONCURRENCY}, 4 threads each),"
        f" {REST_CONCURRENCY} concurrent keep-alive clients ({client}), {REST_SECONDS} s:"
        f" {rate:,.0f} events/s ({requests_per_second:,.1f} requests/s), {failed} non-2xx/failed"
    )
    out(
        "  CPU during it: "
        + ", ".join(
            f"{process} {seconds / REST_SECONDS * 100:.0f}%"
            for process, seconds in used.items()
            if not process.startswith("bench process")
        )
        + " (of one core)"
    )
    if target is None:
        figure(state, name, rate, "events/s", "(info)", None)
    else:
        figure(state, name, rate, "events/s", f">= {target:,}/s", rate >= target and not failed)


def emit_threaded(org: Any, count: int, threads: int, seconds: float) -> float:
    from events import emit  # after django.setup(): run.py imports this module before it

    """Events/s of ``count`` emits (or ``seconds`` of them) shared by ``threads`` threads."""
    from django.db import connection

    done = [0] * threads
    started = time.perf_counter()

    def run(i: int) -> None:
        try:
            while done[i] < count // threads and time.perf_counter() - started < seconds:
                emit(org, "threat.detected", DATA)
                done[i] += 1
        finally:
            connection.close()

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(done) / (time.perf_counter() - started)


def rest_load(url: str, body: bytes, key: str) -> tuple[float, int, str]:
    """(requests/s, failures, client description) for REST_SECONDS of concurrent POSTs."""
    ab = shutil.which("ab")
    if ab:
        body_file = RESULTS / "emit-body.json"
        body_file.write_bytes(body)
        result = subprocess.run(
            [
                ab,
                "-k",
                "-q",
                "-c",
                str(REST_CONCURRENCY),
                "-t",
                str(REST_SECONDS),
                "-n",
                str(AB_MAX_REQUESTS),
                "-p",
                str(body_file),
                "-T",
                "application/json",
                "-H",
                f"Authorization: Bearer {key}",
                url,
            ],  # fmt: skip
            capture_output=True,
            text=True,
        )
        text = result.stdout
        rate = float(re.search(r"Requests per second:\s+([\d.]+)", text).group(1))
        failed = int(re.search(r"Failed requests:\s+(\d+)", text).group(1))
        non2xx = re.search(r"Non-2xx responses:\s+(\d+)", text)
        return rate, failed + (int(non2xx.group(1)) if non2xx else 0), "ApacheBench -k"
    # No ab: Python threads with keep-alive sessions (they take CPU from the server).
    import requests

    done = [0, 0]
    lock = threading.Lock()
    deadline = time.monotonic() + REST_SECONDS

    def client() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        while time.monotonic() < deadline:
            ok = session.post(url, data=body, headers=headers, timeout=CLIENT_TIMEOUT).status_code == 202
            with lock:
                done[0 if ok else 1] += 1

    threads = [threading.Thread(target=client) for _ in range(REST_CONCURRENCY)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return done[0] / (time.monotonic() - started), done[1], "Python requests threads"


def _timed(call: Callable[[], object], events_per_call: int, total: int) -> tuple[int, float, float]:
    """Call ``call`` until ``total`` events or EMIT_SECONDS: (events, wall seconds, CPU seconds)."""
    started, cpu_started = time.perf_counter(), time.process_time()
    count = 0
    while count < total and time.perf_counter() - started < EMIT_SECONDS:
        call()
        count += events_per_call
    return count, time.perf_counter() - started, time.process_time() - cpu_started
