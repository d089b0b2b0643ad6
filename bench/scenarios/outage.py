"""Emitting while Redis (broker and limiter) cannot be reached, no worker running: 50 emit() in
process, then POST /ui/api/events through gunicorn, one request at a time. Each against a port
that refuses connections (Redis down) and against one that accepts them and never answers (a
hung Redis, or packets dropped after the handshake); in process also with RabbitMQ as the broker
and its port refusing. The events are stored either way; what is measured is what the outage
costs the producer."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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


def _close_breaker() -> None:
    from deliveries import dispatch

    # The code before issue 14 had no breaker; this scenario measures it too.
    breaker = getattr(dispatch, "breaker", None)
    if breaker is not None:
        breaker.close()


@contextmanager
def _pointed_at(redis_url: str, broker_url: str) -> Iterator[None]:
    """This process's settings pointed at dead servers (the wake reads them at each call)."""
    from django.conf import settings

    saved = settings.REDIS_URL, settings.CELERY_BROKER_URL
    settings.REDIS_URL, settings.CELERY_BROKER_URL = redis_url, broker_url
    _close_breaker()
    try:
        yield
    finally:
        settings.REDIS_URL, settings.CELERY_BROKER_URL = saved
        _close_breaker()


def run(state: State) -> None:
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
            with _pointed_at(url, url):
                total, p99 = _emit_50(org, f"Redis {kind}")
            if kind == "refused":
                figure(state, "50 emit(), Redis down", total, "s", "< 1 s", total < EMITS_TARGET_SECONDS)
        from django.conf import settings

        with _pointed_at(settings.REDIS_URL, f"amqp://guest:guest@127.0.0.1:{refused}//"):
            _emit_50(org, "RabbitMQ (the broker) refused, Redis up")

        _, key = webhook_services.api_key_create(organization=org)
        # The same with Redis up, right before: what the machine gives a POST at this moment.
        _post_p99(key, settings.REDIS_URL, "up")
        for kind, url in redis_down.items():
            p99 = _post_p99(key, url, kind)
            figure(state, f"POST /ui/api/events p99, Redis {kind}", p99, "ms", "< 50 ms", p99 < POST_TARGET_P99_MS)
    finally:
        hung.close()
    out(harness.cpu_probe())


def _emit_50(org: Any, what: str) -> tuple[float, float]:
    from deliveries.models import Delivery
    from events import emit

    before = Delivery.objects.filter(organization_id=org.id).count()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < EMITS and time.perf_counter() - started < EMIT_BUDGET_SECONDS:
        one = time.perf_counter()
        emit(org, "threat.detected", DATA)
        times.append(time.perf_counter() - one)
    total = time.perf_counter() - started
    stored = Delivery.objects.filter(organization_id=org.id).count() - before
    p99 = percentile(times, 99) * 1000
    out(
        f"{what}: {len(times)} emit() in {total:.3f} s (p50 {percentile(times, 50) * 1000:.1f} ms,"
        f" p99 {p99:.1f} ms, max {max(times) * 1000:.1f} ms); {stored} deliveries stored"
    )
    return total, p99


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
        for _ in range(WARM_UP_REQUESTS):
            assert session.post(url, data=body, timeout=REQUEST_TIMEOUT).status_code == 202
        times: list[float] = []
        failed = 0
        deadline = time.monotonic() + POST_SECONDS
        while time.monotonic() < deadline:
            one = time.perf_counter()
            failed += session.post(url, data=body, timeout=REQUEST_TIMEOUT).status_code != 202
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
