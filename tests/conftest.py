"""Shared fixtures: organizations and keys, an API client, a real HTTP receiver on loopback,
and a real Celery worker (and beat) consuming from Redis against the test database."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# Before Django reads its settings: tests use their own Redis database, and loopback
# receivers must be reachable.
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8,::1/128")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/14")

import pytest  # noqa: E402
import redis  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


# --- Model data --------------------------------------------------------------------------


@dataclass
class Tenant:
    organization: object
    key: str


def make_tenant(name: str = "Acme") -> Tenant:
    from webhooks import services

    organization = services.organization_create(name=name)
    _, key = services.api_key_create(organization=organization)
    return Tenant(organization=organization, key=key)


@pytest.fixture
def tenant(db) -> Tenant:
    return make_tenant("Acme")


@pytest.fixture
def other_tenant(db) -> Tenant:
    return make_tenant("Globex")


def make_webhook(organization, url: str, events: list[str] | None = None, secret: str | None = None, **kwargs):
    from webhooks import services

    return services.webhook_create(organization=organization, url=url, events=events or ["*"], secret=secret, **kwargs)


@pytest.fixture
def api(tenant):
    """An API client authenticated as ``tenant``."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant.key}")
    return client


def api_client(key: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.flushdb()
    yield client
    client.flushdb()


# --- A real HTTP receiver ----------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request.

    ``responses`` maps a path to a callable returning (status, headers, body) or to a status.
    """

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    responses: dict[str, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def received(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if path is None or r.path == path]

    def wait_for(self, count: int, path: str | None = None, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        got = self.received(path)
        raise AssertionError(f"expected {count} requests at {path or 'any path'}, got {len(got)}")


def _handler(receiver_ref: list[Receiver]):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            receiver = receiver_ref[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            with receiver.lock:
                receiver.requests.append(
                    Received(path=self.path, headers=dict(self.headers.items()), body=body, at=time.time())
                )
            response = receiver.responses.get(self.path, 200)
            status, headers, payload = (response, {}, b"ok") if isinstance(response, int) else response(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    ref.append(Receiver(server=server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ref[0]
    server.shutdown()
    server.server_close()


# --- A real Celery worker ----------------------------------------------------------------


def test_database_url() -> str:
    from django.db import connection

    return f"postgres://postgres@127.0.0.1:5432/{connection.settings_dict['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]


@dataclass
class Process:
    """A child process (worker or beat) with its own environment, logging to a file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> Process:
        handle = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.popen = subprocess.Popen(
            self.args, env=self.env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def kill(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def service_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": os.environ["REDIS_URL"],
            "CELERY_BROKER_URL": os.environ["REDIS_URL"],
            "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8,::1/128",
            "WEBHOOK_RETRY_DELAYS": "1,1,1,1,1",
            "WEBHOOK_TIMEOUT": "5",
            "WEBHOOK_SWEEP_INTERVAL": "1",
            "WEBHOOK_DRAIN_SECONDS": "2",
            "CELERY_WORKER_CONCURRENCY": "8",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def worker_command(concurrency: str = "8") -> list[str]:
    """The Procfile's worker command, run with this interpreter."""
    return [
        sys.executable, "-m", "celery", "-A", "webhooks_project", "worker", "--loglevel", "INFO",
        "--pool", "threads", "--concurrency", concurrency, "--without-gossip", "--without-mingle",
    ]  # fmt: skip


@pytest.fixture
def start_worker(tmp_path, redis_client) -> Iterator[Callable[..., Process]]:
    """Start real worker (and beat) processes with env overrides; stopped at teardown."""
    started: list[Process] = []

    def start(*, beat: bool = False, **overrides: str) -> Process:
        env = service_env(**overrides)
        worker = Process(worker_command(env["CELERY_WORKER_CONCURRENCY"]), env, tmp_path / f"worker{len(started)}.log")
        started.append(worker.start())
        if beat:
            args = [
                sys.executable, "-m", "celery", "-A", "webhooks_project", "beat", "--loglevel", "INFO",
                "--schedule", str(tmp_path / "beat-schedule"),
            ]  # fmt: skip
            started.append(Process(args, env, tmp_path / "beat.log").start())
        return worker

    yield start
    for process in started:
        process.stop()


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, message: str = ""):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(message or f"condition not met within {timeout}s")
