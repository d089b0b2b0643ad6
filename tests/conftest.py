"""Shared fixtures: organizations and keys, an API client, a real HTTP receiver on loopback,
and a real Celery worker (and beat) consuming from Redis against the test database."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis

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


def make_delivery(
    webhook,
    event_type: str = "threat.detected",
    *,
    status: str = "pending",
    created_at: datetime | None = None,
    attempt_log: Sequence[tuple[int | None, str, str]] = (),
    **fields,
):
    """A delivery of a fresh sample event to ``webhook``, written with the ORM.

    ``attempt_log`` adds attempt rows, each (response status, body, error), one second apart
    after ``created_at``, and the delivery's attempts, response status and last attempt follow
    from them. A finished delivery has no next attempt. Any other field of the delivery can be
    given in ``fields``; it wins over what is derived.
    """
    from django.utils import timezone

    from deliveries.models import Attempt, Delivery
    from events.catalogue import EVENT_TYPES
    from events.services import build_event

    created_at = created_at or timezone.now()
    event = build_event(webhook.organization_id, event_type, dict(EVENT_TYPES[event_type].sample))
    event.created_at = created_at
    event.save(force_insert=True)
    derived = {
        "attempts": len(attempt_log),
        "response_status": attempt_log[-1][0] if attempt_log else None,
        "last_attempt_at": created_at if attempt_log else None,
        "next_attempt_at": None if status in (Delivery.Status.SUCCEEDED, Delivery.Status.FAILED) else timezone.now(),
    }
    delivery = Delivery.objects.create(
        organization_id=webhook.organization_id,
        webhook=webhook,
        event=event,
        event_type=event_type,
        status=status,
        created_at=created_at,
        **{**derived, **fields},
    )
    for number, (code, body, error) in enumerate(attempt_log, start=1):
        Attempt.objects.create(
            delivery=delivery,
            number=number,
            requested_at=created_at + timedelta(seconds=number),
            response_status=code,
            duration_ms=40 * number,
            response_body=body,
            error=error,
        )
    return delivery


# The product document's two payload examples, verbatim.
DOCUMENT_EXAMPLES = {
    "threat.detected": {
        "threat_id": "thr_xyz789",
        "severity": "high",
        "type": "data_exfiltration",
        "description": "Attempted to access sensitive API keys",
        "agent": {"id": "agt_def456", "hostname": "john-laptop", "user": "user@example.com"},
        "mcp_server": {"name": "custom-server", "command": "node server.js"},
        "details": {"tool": "filesystem_read", "path": "/home/user/.env", "blocked": True},
    },
    "server.approved": {
        "server_id": "srv_ghi789",
        "name": "github",
        "identity_hash": "7f8e9d6c5a4b3e2f1a0b9c8d7e6f5a4b3c2d1e0f",
        "approved_by": "admin@example.com",
        "application": "Claude Desktop",
    },
}

# A dashboard user's password (create_member).
PASSWORD = "correct horse battery staple"


def assert_refused_storing_nothing(response, status: int, field: str | None = None, *, only: bool = False) -> dict:
    """A refused emit (single or batch): ``status``, the JSON error with a message, ``field``
    among the fields it names (``only``: the one field it names), and no event stored."""
    from events.models import Event

    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"]
    assert body["message"]
    if field is not None:
        if only:
            assert list(body["fields"]) == [field], body
        else:
            assert field in body["fields"], body
    assert not Event.objects.exists()
    return body


def create_member(organization, email: str, password: str = PASSWORD):
    """A dashboard user, made the way an operator makes one: with the create_user command."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("create_user", organization.id, email, password=password, stdout=io.StringIO(), stderr=io.StringIO())
    return get_user_model().objects.get(username=email)


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


def unused_port() -> int:
    """A loopback port nothing listens on (once the probe that found it is closed)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RedisServer:
    port: int
    directory: Path
    popen: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        # No persistence: it comes back empty, as after a crash or a failover to a fresh replica.
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.popen = subprocess.Popen(args, cwd=self.directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10, message="redis-server did not start")

    def stop(self) -> None:
        if self.popen and self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(timeout=10)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False


@pytest.fixture
def redis_server(tmp_path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, on a free port, that the test may stop and start."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer(port=unused_port(), directory=tmp_path)
    server.start()
    yield server
    server.stop()


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
            self.received_body = body  # for a ``responses`` callable that checks it
            response = receiver.responses.get(self.path, 200)
            status, headers, payload = (response, {}, b"ok") if isinstance(response, int) else response(self)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def _serve_receiver() -> Iterator[Receiver]:
    ref: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(ref))
    server.daemon_threads = True
    ref.append(Receiver(server=server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield ref[0]
    server.shutdown()
    server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from _serve_receiver()


@pytest.fixture
def another_receiver() -> Iterator[Receiver]:
    """A second receiver, on its own port: for tests of what goes where."""
    yield from _serve_receiver()


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

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the worker says it is ready (on a loaded machine starting one takes seconds,
        which a test timing the pipeline must not count)."""
        wait_until(lambda: b" ready." in self.log.read_bytes(), timeout=timeout, message=f"{self.log.name}: not ready")

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
            args = [sys.executable, "-m", "celery", "-A", "webhooks_project", "beat", "--loglevel", "INFO"]
            beat_env = {**env, "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule")}
            started.append(Process(args, beat_env, tmp_path / "beat.log").start())
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


# --- End-to-end helpers: a Node receiver running the document's verifier ------------------


@dataclass
class NodeReceiver:
    """``node verify_receiver.js``: answers 200 when the documented signature verifies, else 401.

    Every request is one JSON line in its log: delivery_id, event, valid, headers and body.
    """

    popen: subprocess.Popen
    log: Path
    port: int

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self) -> list[dict]:
        # split("\n"), not splitlines(): bodies hold U+2028, which JSON.stringify leaves as is.
        lines = self.log.read_text(encoding="utf-8").split("\n")
        # The first line announces the port; the last is empty or still being written.
        return [json.loads(line) for line in lines[1:-1]]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.requests()
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"Node receiver expected {count} requests, got {len(self.requests())}")


@pytest.fixture
def node_receiver(tmp_path) -> Iterator[Callable[[str], NodeReceiver]]:
    """Start ``verify_receiver.js`` with a secret; stopped at teardown."""
    started: list[NodeReceiver] = []

    def start(secret: str) -> NodeReceiver:
        log = tmp_path / f"node{len(started)}.log"
        handle = open(log, "wb")  # noqa: SIM115 - closed when the process ends
        popen = subprocess.Popen(
            ["node", str(ROOT / "tests" / "e2e" / "verify_receiver.js"), "0", secret],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
        handle.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = log.read_text(encoding="utf-8")
            if text.endswith("\n"):
                receiver = NodeReceiver(popen=popen, log=log, port=json.loads(text.split("\n")[0])["listening"])
                started.append(receiver)
                return receiver
            assert popen.poll() is None, f"node receiver exited: {text}"
            time.sleep(0.02)
        popen.kill()
        raise AssertionError("node receiver did not start")

    yield start
    for receiver in started:
        receiver.popen.terminate()
        receiver.popen.wait(timeout=5)


# --- A receiver that answers one byte at a time ------------------------------------------


@dataclass
class DripServer:
    server: object  # socketserver.ThreadingTCPServer
    hits: list[float]

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


DRIP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n" + b"x" * 40


@pytest.fixture
def drip_server() -> Iterator[Callable[[float | None], DripServer]]:
    """A raw TCP server that reads the request, then sends a 200 one byte every ``interval`` s
    (with ``interval=None`` it never answers, and lets go when the client hangs up)."""
    import contextlib
    import socketserver

    servers: list[DripServer] = []

    def start(interval: float | None) -> DripServer:
        hits: list[float] = []

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                hits.append(time.time())
                self.request.settimeout(10)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = self.request.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                if interval is None:
                    self.request.settimeout(None)
                    with contextlib.suppress(OSError):
                        while self.request.recv(65536):
                            pass
                    return
                for byte in DRIP_RESPONSE:
                    try:
                        self.request.sendall(bytes([byte]))
                    except OSError:
                        return  # the client gave up: what the deadline is for
                    time.sleep(interval)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        drip = DripServer(server=server, hits=hits)
        servers.append(drip)
        return drip

    yield start
    for drip in servers:
        drip.server.shutdown()
        drip.server.server_close()


# --- Delivery history through the API ---------------------------------------------------


@pytest.fixture
def history() -> Callable[..., list[dict]]:
    """``history(client, webhook_id)``: every delivery of the webhook, from the history API."""

    def read(client, webhook_id: str, **params: str) -> list[dict]:
        url = f"/ui/api/webhooks/{webhook_id}/deliveries"
        items: list[dict] = []
        query: dict[str, str] | None = {"limit": "200", **params}
        while url:
            response = client.get(url, query)
            assert response.status_code == 200, response.content
            body = response.json()
            items += body["results"]
            url, query = body["next"], None
        return items

    return read
