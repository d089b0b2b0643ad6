"""Numbers for ``/metrics`` (Prometheus text format) and ``/healthz``.

Most values are read from PostgreSQL over a recent window, each through an index, so a scrape
stays cheap at any table size; they are gauges and named for their window. The true counters
(deliveries held back by the rate limiter, drains parked at their organization's concurrency
cap) live in Redis (``record_throttled``, ``record_parked``).
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import redis
from django.conf import settings
from django.db import connection

from deliveries import selectors
from deliveries.models import DUE_SQL
from deliveries.rates import Grade, Rates
from webhooks_project.redis import REDIS_SOCKET_TIMEOUT, get_redis

logger = logging.getLogger(__name__)

THROTTLED_KEY = "webhooks:metrics:throttled"
PARKED_KEY = "webhooks:metrics:parked"
# The Celery queue every task goes to (CELERY_TASK_DEFAULT_QUEUE): a Redis list.
QUEUE_NAME = "webhooks"
# Upper bounds (seconds) of the attempt latency buckets; the receiver timeout is 30 s.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATUSES = ("pending", "retrying", "succeeded", "failed")
# The window of the deliveries' and rates' gauges (what the dashboard's list shows).
RECENT_WINDOW = timedelta(hours=24)
# Attempt outcomes: a 2xx, another HTTP status, or no response at all (network error, timeout).
OUTCOMES = ("success", "http_error", "network_error")

_OLDEST_DUE_SQL = f"SELECT extract(epoch FROM now() - min(next_attempt_at)) FROM deliveries_delivery WHERE {DUE_SQL}"


def oldest_due_age_seconds() -> float:
    """How long the most overdue delivery (due, not leased by a worker) has waited; 0 if none.

    Served by the partial index on open deliveries' ``next_attempt_at``.
    """
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_DUE_SQL)
        (age,) = cursor.fetchone()
    return max(float(age or 0.0), 0.0)


def record_throttled(count: int) -> None:
    """Count deliveries the rate limiter held back. Never raises: a metric is not worth a failure."""
    if count <= 0:
        return
    with contextlib.suppress(redis.RedisError):
        get_redis().incrby(THROTTLED_KEY, count)


def record_parked() -> None:
    """Count a drain parked because its organization held all of its slots. Never raises."""
    with contextlib.suppress(redis.RedisError):
        get_redis().incr(PARKED_KEY)


@lru_cache(maxsize=1)
def _broker() -> redis.Redis | None:
    url = settings.CELERY_BROKER_URL
    if url == settings.REDIS_URL:
        return get_redis()
    if url.startswith(("redis://", "rediss://", "unix://")):
        return redis.Redis.from_url(
            url, socket_timeout=REDIS_SOCKET_TIMEOUT, socket_connect_timeout=REDIS_SOCKET_TIMEOUT
        )
    return None


@dataclass
class _Family:
    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


def render(families: list[_Family]) -> str:
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in family.samples:
            label_text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels.items())
            lines.append(
                f"{family.name}{{{label_text}}} {_number(value)}" if labels else f"{family.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def _health_families() -> list[_Family]:
    """The last 24 hours' deliveries by status and their attempts' success rate, overall and
    graded per webhook, by the rates the dashboard and the admin show (``deliveries.rates``)."""
    totals, by_webhook = selectors.all_webhooks_health(window=RECENT_WINDOW)
    recent = Counter[str]()
    for counts in totals.values():
        recent.update(counts)
    overall = sum(by_webhook.values(), Rates())
    grades = Counter(counted.grade for counted in by_webhook.values() if counted.grade is not None)
    families = [
        _Family(
            "webhook_deliveries_last_24h",
            "gauge",
            "Deliveries created in the last 24 hours, by current status.",
            [({"status": status}, recent[status]) for status in STATUSES],
        ),
        _Family(
            "webhook_endpoints_by_health_last_24h",
            "gauge",
            "Webhooks by the grade of their attempts' success rate over the last 24 hours' deliveries (healthy:"
            " at least 99 %, degraded: below, failing: under 90 %); webhooks without attempts are not counted.",
            [({"health": grade.value}, grades[grade]) for grade in Grade],
        ),
    ]
    success_rate = overall.success_rate()
    if success_rate is not None:
        families.append(
            _Family(
                "webhook_attempt_success_ratio_last_24h",
                "gauge",
                "Successful attempts / all attempts of the deliveries created in the last 24 hours, every webhook"
                " together, rounded down to 4 places (absent when nothing was attempted).",
                [({}, success_rate)],
            )
        )
    return families


def _database_families() -> list[_Family]:
    # Long, but one read: three queries on one cursor, then the families they fill, declared.
    with connection.cursor() as cursor:
        # The backlog: every open delivery, whatever its age (partial index on open deliveries).
        cursor.execute(
            "SELECT status, count(*) FROM deliveries_delivery WHERE status IN ('pending', 'retrying') GROUP BY status"
        )
        open_now = dict(cursor.fetchall())
        # Attempts of the last hour: outcome counts and latency buckets in one pass (index on requested_at).
        bucket_columns = ", ".join(f"count(*) FILTER (WHERE duration_ms <= {int(le * 1000)})" for le in LATENCY_BUCKETS)
        cursor.execute(
            "SELECT count(*) FILTER (WHERE response_status BETWEEN 200 AND 299),"
            " count(*) FILTER (WHERE response_status IS NOT NULL AND response_status NOT BETWEEN 200 AND 299),"
            " count(*) FILTER (WHERE response_status IS NULL),"
            f" coalesce(sum(duration_ms), 0), count(*), {bucket_columns}"
            " FROM deliveries_attempt WHERE requested_at >= now() - interval '1 hour'"
        )
        row = cursor.fetchone()
        cursor.execute("SELECT enabled, count(*) FROM webhooks_webhook GROUP BY enabled")
        webhooks = dict(cursor.fetchall())
    outcomes = dict(zip(OUTCOMES, row[:3], strict=True))
    duration_sum_ms, attempt_count = row[3], row[4]
    buckets = [*zip(LATENCY_BUCKETS, row[5:], strict=True), (float("inf"), attempt_count)]
    return [
        _Family(
            "webhook_deliveries_open",
            "gauge",
            "Deliveries not finished yet (pending or retrying), of any age.",
            [({"status": status}, open_now.get(status, 0)) for status in STATUSES[:2]],
        ),
        _Family(
            "webhook_attempts_last_hour",
            "gauge",
            "Delivery attempts made in the last hour, by outcome (network_error: no HTTP response).",
            [({"outcome": outcome}, outcomes[outcome]) for outcome in OUTCOMES],
        ),
        _Family(
            "webhook_attempt_duration_seconds_last_hour_bucket",
            "gauge",
            "Attempts of the last hour that took at most le seconds (cumulative; a snapshot, not a counter:"
            " use histogram_quantile on it directly, without rate).",
            [({"le": _number(le)}, count) for le, count in buckets],
        ),
        _Family(
            "webhook_attempt_duration_seconds_last_hour_sum",
            "gauge",
            "Total duration of the last hour's attempts, in seconds.",
            [({}, duration_sum_ms / 1000)],
        ),
        _Family(
            "webhook_attempt_duration_seconds_last_hour_count",
            "gauge",
            "Attempts made in the last hour.",
            [({}, attempt_count)],
        ),
        _Family(
            "webhook_oldest_due_delivery_age_seconds",
            "gauge",
            "How long the most overdue delivery (due and not being attempted) has waited; 0 when none.",
            [({}, round(oldest_due_age_seconds(), 3))],
        ),
        _Family(
            "webhook_endpoints",
            "gauge",
            "Webhook endpoints, by whether they are enabled.",
            [({"enabled": "true"}, webhooks.get(True, 0)), ({"enabled": "false"}, webhooks.get(False, 0))],
        ),
    ]


def _redis_families() -> list[_Family]:
    families: list[_Family] = []
    try:
        throttled, parked = (int(value or 0) for value in get_redis().mget(THROTTLED_KEY, PARKED_KEY))
        redis_up = 1
    except redis.RedisError:
        throttled, parked, redis_up = 0, 0, 0
    families.append(_Family("webhook_redis_up", "gauge", "1 when Redis answered this scrape.", [({}, redis_up)]))
    if redis_up:
        families.append(
            _Family(
                "webhook_deliveries_throttled_total",
                "counter",
                "Deliveries held back by the per-organization rate limit (each time one was postponed).",
                [({}, throttled)],
            )
        )
        families.append(
            _Family(
                "webhook_drains_parked_total",
                "counter",
                "Drains that waited because their organization held WEBHOOK_ORG_CONCURRENCY attempts in flight.",
                [({}, parked)],
            )
        )
    broker = _broker()
    if broker is not None:
        try:
            depth = broker.llen(QUEUE_NAME)
        except redis.RedisError:
            depth = None
        if depth is not None:
            families.append(
                _Family(
                    "webhook_queue_depth",
                    "gauge",
                    f"Messages waiting in the Celery queue {QUEUE_NAME!r} (not yet taken by a worker).",
                    [({}, depth)],
                )
            )
    return families


def prometheus_text() -> str:
    """Every metric, in the Prometheus text exposition format (version 0.0.4)."""
    return render(_health_families() + _database_families() + _redis_families())
