"""The floor: the simplest Celery design there is, one task per signed POST, no database.

``bench/run.py floor`` starts ``celery -A floor_app worker --pool prefork --concurrency 2``
(from bench/), enqueues 10,000 ``floor.post`` tasks and times them; each finished POST
increments a Redis counter. Configured by BENCH_FLOOR_BROKER (a Redis URL).
"""

from __future__ import annotations

import hashlib
import hmac
import os

import redis
import requests
from celery import Celery

BROKER_URL = os.environ.get("BENCH_FLOOR_BROKER", "redis://127.0.0.1:6379/13")
QUEUE = "floor"
DONE_KEY = "bench:floor:done"
FAILED_KEY = "bench:floor:failed"
TIMEOUT_SECONDS = 30.0

# Not the process's current app: the bench process also holds the service's own app.
app = Celery("floor_app", broker=BROKER_URL, set_as_current=False)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

# One session and one Redis client per pool process, made on first use (after the fork).
_session: requests.Session | None = None
_redis: redis.Redis | None = None


def _clients() -> tuple[requests.Session, redis.Redis]:
    global _session, _redis
    if _session is None or _redis is None:
        _session = requests.Session()
        _session.trust_env = False
        _redis = redis.Redis.from_url(BROKER_URL)
    return _session, _redis


@app.task(name="floor.post")
def post(url: str, body: str, secret: str, delivery_id: str) -> None:
    session, client = _clients()
    data = body.encode()
    signature = "sha256=" + hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
    try:
        response = session.post(
            url,
            data=data,
            headers={
                "Content-Type": "application/json",
                "X-CyberCage-Signature": signature,
                "X-CyberCage-Delivery-ID": delivery_id,
            },
            timeout=TIMEOUT_SECONDS,
        )
        ok = 200 <= response.status_code < 300
    except requests.RequestException:
        ok = False
    client.incr(DONE_KEY if ok else FAILED_KEY)
