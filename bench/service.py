"""The service under test as the benchmark configures it: its environment (set for this process
on import, and handed to every process the benchmark starts), its own database and Redis
database, and the organizations the scenarios create in it."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import harness

from events.catalogue import EVENT_TYPES  # pure module, no Django needed

DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/webhooks_bench")
# Redis databases the bench may take (the test suite uses 1-12); the first no one else uses.
REDIS_CANDIDATES = ("redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379/14")
WEBHOOK_TIMEOUT = os.environ.get("BENCH_WEBHOOK_TIMEOUT", "10")
# Rate limits so high they never bind: the benchmark measures the pipeline, not the limiter.
UNBOUND_RATE = "1000000000"
# Redis commands a Celery consumer blocks in while it waits for a message.
CONSUMER_COMMANDS = ("brpop", "blpop", "bzpopmin")

# The document's threat.detected example, as the catalogue holds it.
DATA = EVENT_TYPES["threat.detected"].sample


def _choose_redis_url() -> str:
    """BENCH_REDIS_URL, else the first candidate database without other clients: a worker of
    someone else's listening there would take the bench's messages (seen while developing it:
    a test run's worker on db 13 swallowed a quarter of the wake-ups)."""
    import redis

    if os.environ.get("BENCH_REDIS_URL"):
        return os.environ["BENCH_REDIS_URL"]
    for url in REDIS_CANDIDATES:
        client = redis.Redis.from_url(url)
        db = int(url.rsplit("/", 1)[1])
        me = client.client_id()
        if not [c for c in client.client_list() if int(c.get("db", -1)) == db and int(c["id"]) != me]:
            client.close()
            return url
        client.close()
    raise SystemExit(f"every one of {REDIS_CANDIDATES} has other clients connected; set BENCH_REDIS_URL")


REDIS_URL = _choose_redis_url()

# The service's settings for the bench process and every process it starts.
SERVICE_ENV = {
    "DJANGO_SETTINGS_MODULE": "webhooks_project.settings",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "CELERY_BROKER_URL": REDIS_URL,
    "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
    "WEBHOOK_RATE_PER_SECOND": UNBOUND_RATE,
    "WEBHOOK_RATE_PER_HOUR": UNBOUND_RATE,
    # The API's per-key request limits would cap the REST figures; they are not what is measured.
    "API_THROTTLE_RATE": "",
    "API_EVENTS_THROTTLE_RATE": "",
    "WEBHOOK_TIMEOUT": WEBHOOK_TIMEOUT,
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
    "PYTHONUNBUFFERED": "1",
}
# The services the bench starts log as deployed (LOG_LEVEL as given, else the service's INFO);
# the bench process itself only warnings.
SERVICE_LOG_LEVEL = os.environ.get("LOG_LEVEL")
os.environ.update(SERVICE_ENV, LOG_LEVEL="WARNING")


def service_env(**extra: str) -> dict[str, str]:
    """The environment of a process the bench starts: the service's settings, its log level."""
    env = dict(os.environ, **extra)
    if SERVICE_LOG_LEVEL is None:
        env.pop("LOG_LEVEL")
    else:
        env["LOG_LEVEL"] = SERVICE_LOG_LEVEL
    return env


def database_name() -> str:
    return urlparse(DATABASE_URL).path.lstrip("/")


def setup_database() -> None:
    harness.recreate_database(DATABASE_URL)


def pg_backends() -> list[int]:
    """PostgreSQL server processes serving the bench's database (others' are not ours to count)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [row[0] for row in cursor.fetchall()]


def redis_client() -> Any:
    import redis

    return redis.Redis.from_url(REDIS_URL)


def versions() -> tuple[str, str]:
    """(PostgreSQL's version, Redis's version)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return pg, redis_client().info("server")["redis_version"]


def make_org(name: str, urls: list[str]) -> tuple[Any, list[Any]]:
    """A new organization with one webhook per URL, subscribed to every event type."""
    from webhooks import services as webhook_services

    org = webhook_services.organization_create(name=name)
    webhooks = [webhook_services.webhook_create(organization=org, url=url, events=["*"]).webhook for url in urls]
    return org, webhooks


def consumers_of_our_db(exclude_pids: set[int]) -> list[str]:
    """Processes other than ``exclude_pids`` blocked on a queue of our Redis database: a stray
    worker there takes the benchmark's messages (and, pointed at another PostgreSQL database,
    finds no deliveries and drops the wake-up)."""
    db = int(urlparse(REDIS_URL).path.lstrip("/") or 0)
    port = urlparse(REDIS_URL).port or 6379
    clients = redis_client().client_list()
    waiting = {c["addr"] for c in clients if int(c.get("db", -1)) == db and c.get("cmd") in CONSUMER_COMMANDS}
    if not waiting:
        return []
    found = []
    listing = subprocess.run(["ss", "-tnpH", "dst", f"127.0.0.1:{port}"], capture_output=True, text=True).stdout
    for line in listing.splitlines():
        fields = line.split()
        match = re.search(r"pid=(\d+)", line)
        if len(fields) >= 4 and fields[3] in waiting and match and int(match.group(1)) not in exclude_pids:
            pid = int(match.group(1))
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:160]
            except OSError:
                command = "?"
            found.append(f"pid {pid}: {command}")
    return found


def broker_keys(client: Any) -> list[str]:
    """The broker's keys in our Redis database (the service's own ``whk:`` keys left out)."""
    return sorted(key.decode() for key in client.scan_iter(count=1000) if not key.startswith(b"whk:"))
