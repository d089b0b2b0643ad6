"""Emitting while Redis (broker and limiter) cannot be reached, no worker running: 50 emit() in
process, then POST /ui/api/events through gunicorn, one request at a time. Each against a port
that refuses connections (Redis down) and against one that accepts them and never answers (a
hung Redis, or packets dropped after the handshake); in process also with RabbitMQ as the broker
and its port refusing. The events are stored either way; what is measured is what the outage
costs the producer."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import harness
from common import State, figure, out
from harness import ROOT, Proc, percentile
from service import DATA, make_org, service_env

EMITS = 50
EMITS_TARGET_SECONDS = 1.0
# Emits stop after this long even if not all 50 went (the code before issue 14 took minutes
# against a hung Redis).
EMIT_BUDGET_SECONDS = 60.0
# ... and the emitting process is ended this much later if one emit never returns.
EMITTER_SLACK_SECONDS = 30.0
POST_SECONDS = 10.0
POST_TARGET_P99_MS = 50.0
WEB_CONCURRENCY = 2
WEB_READY_TIMEOUT = 30
# Requests before the timing starts: imports, database connections (the first failed wakes too;
# the breaker closes again every WEBHOOK_WAKE_BACKOFF, so the timed run meets it again).
WARM_UP_REQUESTS = 20
REQUEST_TIMEOUT = 30


class HungServer:
    """A TCP port that accepts connections and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def port(self) -> int:
        return self.sock.getsockname()[1]

    def _accept(self) -> None:
        while True:
            try:
                self.held.append(self.sock.accept()[0])
            except OSError:
                return

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


# The emitting process: a fresh one, so it reads the dead servers from its environment as a
# deployed producer would. Warmed up without a wake (imports, the database connection, the
# schema), so the first of the 50 is the first to meet the outage.
_EMITTER = """
import json, sys, time
import django
django.setup()
from django.db import connection
from events import emit
from events.catalogue import EVENT_TYPES
from events.services import build_event
from deliveries import dispatch  # noqa: F401 - imported as a producer's process has it
org_id, count, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = EVENT_TYPES["threat.detected"].sample
connection.ensure_connection()
build_event(org_id, "threat.detected", data)
times = []
started = time.perf_counter()
while len(times) < count and time.perf_counter() - started < budget:
    one = time.perf_counter()
    emit(org_id, "threat.detected", data)
    times.append(time.perf_counter() - one)
print(json.dumps({"total": time.perf_counter() - started, "times": times}))
"""


def run(state: State) -> None:
    from django.conf import settings

    from webhooks import services as webhook_services

    out()
    out("== 8. Emitting through a Redis outage (no worker) ==")
    out(harness.cpu_probe())
    org, _ = make_org("bench-outage", ["http://127.0.0.1:9/outage"])
    refused = harness.free_port()  # nothing listens there
    hung = HungServer()
    redis_down = {
        "refused": f"redis://127.0.0.1:{refused}/0",
        "hung": f"redis://127.0.0.1:{hung.port}/0",
    }
    try:
        for kind, url in redis_down.items():
            total = _emit_50(org, url, url, f"Redis {kind}")
            if kind == "refused":
                figure(
                    state,
                    "50 emit(), Redis down",
                    total,
                    "s",
                    "< 1 s",
                    total is not None and total < EMITS_TARGET_SECONDS,
                )
        _emit_50(
            org,
            settings.REDIS_URL,
            f"amqp://guest:guest@127.0.0.1:{refused}//",
            "RabbitMQ (the broker) refused, Redis up",
        )

        _, key = webhook_services.api_key_create(organization=org)
        # The same with Redis up, right before: what the machine gives a POST at this moment.
        _post_p99(key, settings.REDIS_URL, "up")
        for kind, url in redis_down.items():
            p99 = _post_p99(key, url, kind)
            figure(state, f"POST /ui/api/events p99, Redis {kind}", p99, "ms", "< 50 ms", p99 < POST_TARGET_P99_MS)
    finally:
        hung.close()
    out(harness.cpu_probe())


def _emit_50(org: Any, redis_url: str, broker_url: str, what: str) -> float | None:
    """Seconds for EMITS emit() calls in a process whose Redis and broker are the given ones."""
    from deliveries.models import Delivery

    before = Delivery.objects.filter(organization_id=org.id).count()
    env = service_env(REDIS_URL=redis_url, CELERY_BROKER_URL=broker_url, PYTHONPATH=str(ROOT))
    try:
        done = subprocess.run(
            [sys.executable, "-c", _EMITTER, org.id, str(EMITS), str(EMIT_BUDGET_SECONDS)],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=EMIT_BUDGET_SECONDS + EMITTER_SLACK_SECONDS,
        )
    except subprocess.TimeoutExpired:
        out(f"{what}: not one emit() returned within {EMIT_BUDGET_SECONDS + EMITTER_SLACK_SECONDS:.0f} s")
        return None
    report = json.loads(done.stdout.strip().splitlines()[-1])
    times, total = report["times"], report["total"]
    stored = Delivery.objects.filter(organization_id=org.id).count() - before
    out(
        f"{what}: {len(times)} emit() in {total:.3f} s (p50 {percentile(times, 50) * 1000:.1f} ms,"
        f" p99 {percentile(times, 99) * 1000:.1f} ms, max {max(times) * 1000:.1f} ms); {stored} deliveries stored"
    )
    return total if len(times) == EMITS else None


def _post_p99(key: str, redis_url: str, kind: str) -> float:
    import requests

    port = harness.free_port()
    env = service_env(
        PORT=str(port), WEB_CONCURRENCY=str(WEB_CONCURRENCY), REDIS_URL=redis_url, CELERY_BROKER_URL=redis_url
    )
    command = harness.procfile_command("web", env)
    gunicorn = Proc("gunicorn", [str(ROOT / ".venv" / "bin" / command[0]), *command[1:]], env)
    try:
        harness.wait_for_port(port, timeout=WEB_READY_TIMEOUT)
        url = f"http://127.0.0.1:{port}/ui/api/events"
        body = json.dumps({"event": "threat.detected", "data": DATA})
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        warm_until = time.monotonic() + POST_SECONDS
        for _ in range(WARM_UP_REQUESTS):
            if time.monotonic() > warm_until:
                break
            _post(session, url, body)
        times: list[float] = []
        failed = 0
        deadline = time.monotonic() + POST_SECONDS
        while time.monotonic() < deadline:
            one = time.perf_counter()
            failed += not _post(session, url, body)
            times.append(time.perf_counter() - one)
        p99 = percentile(times, 99) * 1000
        out(
            f"POST /ui/api/events via gunicorn (WEB_CONCURRENCY={WEB_CONCURRENCY}), one client, Redis {kind},"
            f" {POST_SECONDS:.0f} s: {len(times)} requests, p50 {percentile(times, 50) * 1000:.1f} ms,"
            f" p99 {p99:.1f} ms, max {max(times) * 1000:.1f} ms, {failed} not 202"
        )
        return p99
    finally:
        gunicorn.stop()


def _post(session: Any, url: str, body: str) -> bool:
    import requests

    try:
        return session.post(url, data=body, timeout=REQUEST_TIMEOUT).status_code == 202
    except requests.RequestException:  # the code before issue 14 could hang on a hung Redis
        return False
