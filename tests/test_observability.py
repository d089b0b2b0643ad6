"""What operators watch: /healthz, /metrics, a webhook's stats over the API, and the logs
(JSON with LOG_FORMAT=json, carrying ids, never secrets)."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from conftest import ROOT, api_client, make_webhook
from django.utils import timezone

from deliveries import dispatch, drain, services
from deliveries.models import Attempt, Delivery
from webhooks_project.logging import JsonFormatter
from webhooks_project.redis import get_redis

# A sample line of the Prometheus text format: name, optional labels, a number.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*)?\})? (-?[0-9.e+]+|\+Inf)$')


def parse_metrics(text: str) -> dict[str, float]:
    """``{'name{labels}': value}``; fails on any line that is not valid exposition format."""
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        if line.startswith("# HELP ") or not line:
            continue
        match = SAMPLE.match(line)
        assert match, f"not a metric sample: {line!r}"
        assert match.group(1) in types, f"{match.group(1)} has no TYPE line"
        samples[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    return samples


def overdue_delivery(webhook, *, seconds: float) -> Delivery:
    delivery = services.delivery_send_test(webhook=webhook, event_type="test.ping")
    Delivery.objects.filter(id=delivery.id).update(next_attempt_at=timezone.now() - timedelta(seconds=seconds))
    return delivery


# --- /healthz ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_healthz_reports_ok_when_database_redis_and_lag_are_fine(client, tenant, redis_client):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    overdue_delivery(webhook, seconds=10)

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["redis"] == "ok"
    assert 5 <= body["oldest_overdue_delivery_seconds"] < 60  # now() is the transaction's start here
    assert body["max_lag_seconds"] == 300


@pytest.mark.django_db
def test_healthz_is_503_when_deliveries_wait_longer_than_max_lag(client, tenant, redis_client, settings):
    settings.WEBHOOK_HEALTH_MAX_LAG = 60
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    overdue_delivery(webhook, seconds=120)
    leased = overdue_delivery(webhook, seconds=600)
    # A delivery a worker holds right now is being attempted, not waiting.
    Delivery.objects.filter(id=leased.id).update(lease_until=timezone.now() + timedelta(seconds=60))

    response = client.get("/healthz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert 100 <= body["oldest_overdue_delivery_seconds"] < 300
    assert "WEBHOOK_HEALTH_MAX_LAG" in body["delivery_lag"]


@pytest.mark.django_db
def test_healthz_is_503_when_redis_is_down(client, settings):
    get_redis.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    try:
        response = client.get("/healthz")
    finally:
        get_redis.cache_clear()

    assert response.status_code == 503
    assert response.json()["redis"].startswith("error: ")
    assert response.json()["database"] == "ok"


def test_healthz_is_503_when_database_is_down():
    script = (
        "import django; django.setup();"
        "from django.test import Client;"
        "r = Client(HTTP_HOST='localhost').get('/healthz');"
        "print(r.status_code, r.content.decode())"
    )
    env = dict(os.environ, DATABASE_URL="postgres://postgres@127.0.0.1:1/nothing")
    env["DJANGO_SETTINGS_MODULE"] = "webhooks_project.settings"

    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    status, body = done.stdout.strip().split(" ", 1)
    assert status == "503"
    assert json.loads(body)["database"].startswith("error: ")


# --- /metrics ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_metrics_expose_deliveries_attempts_latency_queue_and_lag(client, tenant, receiver, redis_client, settings):
    settings.METRICS_PUBLIC = True
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    receiver.responses["/down"] = 500
    failing = make_webhook(tenant.organization, receiver.url("/down")).webhook
    for hook in (webhook, webhook, failing):
        services.delivery_send_test(webhook=hook, event_type="test.ping")
    drain.webhook_drain(webhook_id=webhook.id)
    drain.webhook_drain(webhook_id=failing.id)
    overdue_delivery(failing, seconds=90)
    redis_client.delete("webhooks")  # the wakes the test deliveries sent
    dispatch.wake(webhook.id, coalesce=False)
    dispatch.wake(failing.id, coalesce=False)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    m = parse_metrics(response.content.decode())
    assert m['webhook_deliveries_last_24h{status="succeeded"}'] == 2
    assert m['webhook_deliveries_last_24h{status="retrying"}'] == 1
    assert m['webhook_deliveries_last_24h{status="pending"}'] == 1
    # Attempts: 200, 200 and 500; one webhook all green, the other all red (deliveries.rates).
    assert m["webhook_attempt_success_ratio_last_24h"] == 0.6666
    assert m['webhook_endpoints_by_health_last_24h{health="healthy"}'] == 1
    assert m['webhook_endpoints_by_health_last_24h{health="degraded"}'] == 0
    assert m['webhook_endpoints_by_health_last_24h{health="failing"}'] == 1
    assert m['webhook_deliveries_open{status="retrying"}'] == 1
    assert m['webhook_attempts_last_hour{outcome="success"}'] == 2
    assert m['webhook_attempts_last_hour{outcome="http_error"}'] == 1
    assert m['webhook_attempts_last_hour{outcome="network_error"}'] == 0
    assert m["webhook_attempt_duration_seconds_last_hour_count"] == 3
    assert m['webhook_attempt_duration_seconds_last_hour_bucket{le="+Inf"}'] == 3
    buckets = [v for k, v in m.items() if k.startswith("webhook_attempt_duration_seconds_last_hour_bucket")]
    assert buckets == sorted(buckets)  # cumulative
    assert m['webhook_attempt_duration_seconds_last_hour_bucket{le="5"}'] == 3  # loopback is fast
    assert 90 <= m["webhook_oldest_due_delivery_age_seconds"] < 300
    assert m["webhook_queue_depth"] == 2
    assert m['webhook_endpoints{enabled="true"}'] == 2
    assert m["webhook_redis_up"] == 1


@pytest.mark.django_db(transaction=True)
def test_metrics_count_deliveries_held_back_by_the_rate_limit(client, tenant, receiver, redis_client, settings):
    settings.WEBHOOK_RATE_PER_SECOND = 1
    settings.METRICS_PUBLIC = True
    webhook = make_webhook(tenant.organization, receiver.url()).webhook
    for _ in range(3):
        services.delivery_send_test(webhook=webhook, event_type="test.ping")

    drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received()) == 1
    m = parse_metrics(client.get("/metrics").content.decode())
    assert m["webhook_deliveries_throttled_total"] == 2


@pytest.mark.django_db
def test_metrics_require_the_token_when_one_is_set(client, settings, redis_client):
    settings.METRICS_TOKEN = "scrape-token-123"

    anonymous = client.get("/metrics")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    right = client.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")

    assert anonymous.status_code == 401
    assert anonymous["WWW-Authenticate"].startswith("Bearer")
    assert anonymous.json() == {
        "error": "unauthorized",
        "message": "/metrics requires Authorization: Bearer <METRICS_TOKEN>.",
    }
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "webhook_deliveries_last_24h" in right.content.decode()


@pytest.mark.django_db
def test_metrics_are_closed_with_a_json_explanation_when_neither_token_nor_public(client, settings, redis_client):
    assert (settings.METRICS_TOKEN, settings.METRICS_PUBLIC) == ("", False)  # the defaults

    response = client.get("/metrics")

    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "forbidden"
    assert "METRICS_TOKEN" in body["message"]
    assert "METRICS_PUBLIC=true" in body["message"]
    assert "webhook_" not in response.content.decode()


@pytest.mark.django_db
def test_metrics_still_need_the_token_when_public_and_a_token_is_set(client, settings, redis_client):
    settings.METRICS_PUBLIC = True
    settings.METRICS_TOKEN = "scrape-token-123"

    assert client.get("/metrics").status_code == 401
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200


# --- GET /ui/api/webhooks/{id}/stats -----------------------------------------------------


def attempted(webhook, *, status: str, http: int, duration_ms: int, age: timedelta = timedelta(0)) -> Delivery:
    delivery = services.delivery_send_test(webhook=webhook, event_type="test.ping")
    at = timezone.now() - age
    Delivery.objects.filter(id=delivery.id).update(
        status=status, attempts=1, response_status=http, created_at=at, last_attempt_at=at, next_attempt_at=None
    )
    # The delivery moved to another day: its attempt goes with it (the partition key).
    Attempt.objects.create(
        delivery=delivery, delivery_created_at=at, number=1, requested_at=at, response_status=http,
        duration_ms=duration_ms,
    )  # fmt: skip
    return delivery


@pytest.mark.django_db
def test_stats_report_totals_success_rate_and_latency_for_the_window(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    for ms in (100, 200, 300):
        attempted(webhook, status="succeeded", http=200, duration_ms=ms)
    attempted(webhook, status="failed", http=500, duration_ms=400)
    attempted(webhook, status="failed", http=500, duration_ms=50, age=timedelta(days=3))
    api = api_client(tenant.key)

    day = api.get(f"/ui/api/webhooks/{webhook.id}/stats").json()
    week = api.get(f"/ui/api/webhooks/{webhook.id}/stats", {"window": "7d"}).json()

    assert day["window"] == "24h"
    assert day["totals"] == {"pending": 0, "retrying": 0, "succeeded": 3, "failed": 1}
    assert day["attempts"] == {"total": 4, "succeeded": 3, "failed": 1}
    assert day["success_rate"] == 0.75
    assert day["failure_rate"] == 0.25
    assert day["health"] == "failing"  # under 90 %
    assert day["latency_ms"]["p50"] == 250
    assert 300 < day["latency_ms"]["p95"] <= 400
    assert day["last_status"] in {"succeeded", "failed"}
    assert week["window"] == "7d"
    assert week["totals"]["failed"] == 2
    assert week["success_rate"] == 0.6


@pytest.mark.django_db
def test_stats_count_attempts_so_retried_deliveries_show_at_once(tenant):
    """The issue's API answer: "retrying": 8, "succeeded": 6, "success_rate": 1.0 while the
    endpoint answered 400. Rates count attempts, and the deliveries by status stay."""
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    for _ in range(6):
        attempted(webhook, status="succeeded", http=200, duration_ms=40)
    for _ in range(8):
        attempted(webhook, status="retrying", http=400, duration_ms=40)

    body = api_client(tenant.key).get(f"/ui/api/webhooks/{webhook.id}/stats").json()

    assert body["totals"] == {"pending": 0, "retrying": 8, "succeeded": 6, "failed": 0}
    assert body["attempts"] == {"total": 14, "succeeded": 6, "failed": 8}
    assert body["success_rate"] == 0.4285
    assert body["failure_rate"] == 0.5715
    assert body["health"] == "failing"


@pytest.mark.django_db
def test_stats_round_latency_to_a_tenth_of_a_millisecond(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook
    for ms in (1, 7):  # PostgreSQL interpolates their p95 as 6.699999999999999
        attempted(webhook, status="succeeded", http=200, duration_ms=ms)

    body = api_client(tenant.key).get(f"/ui/api/webhooks/{webhook.id}/stats").json()

    assert body["latency_ms"] == {"p50": 4.0, "p95": 6.7}
    assert body["health"] == "healthy"


@pytest.mark.django_db
def test_stats_have_no_rate_when_nothing_finished(tenant):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook

    body = api_client(tenant.key).get(f"/ui/api/webhooks/{webhook.id}/stats", {"window": "1h"}).json()

    assert body == {
        "window": "1h",
        "totals": {"pending": 0, "retrying": 0, "succeeded": 0, "failed": 0},
        "attempts": {"total": 0, "succeeded": 0, "failed": 0},
        "success_rate": None,
        "failure_rate": None,
        "health": None,
        "latency_ms": {"p50": None, "p95": None},
        "last_status": None,
        "filtered": 0,
    }


@pytest.mark.django_db
@pytest.mark.parametrize("window", ["24", "0h", "1w", "h", "100d", "-1h"])
def test_stats_refuse_a_bad_window_naming_the_field(tenant, window):
    webhook = make_webhook(tenant.organization, "https://example.com/hook").webhook

    response = api_client(tenant.key).get(f"/ui/api/webhooks/{webhook.id}/stats", {"window": window})

    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["window"]


@pytest.mark.django_db
def test_stats_of_another_organizations_webhook_are_not_found(tenant, other_tenant):
    theirs = make_webhook(other_tenant.organization, "https://example.com/hook").webhook

    response = api_client(tenant.key).get(f"/ui/api/webhooks/{theirs.id}/stats")

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# --- Logs --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_delivery_logs_carry_ids_and_never_the_secret(tenant, receiver, redis_client, caplog):
    secret = "whsec_" + "c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1iZS1sb2dnZWQ="
    receiver.responses["/flaky"] = 503
    webhook = make_webhook(tenant.organization, receiver.url("/flaky"), secret=secret).webhook
    delivery = services.delivery_send_test(webhook=webhook, event_type="test.ping")
    caplog.set_level(logging.DEBUG)

    drain.webhook_drain(webhook_id=webhook.id)

    assert len(receiver.received("/flaky")) == 1
    records = [r for r in caplog.records if r.name.startswith(("deliveries", "webhooks", "events"))]
    lines = [JsonFormatter().format(r) for r in records]
    assert any(delivery.id in line and delivery.event_id in line for line in lines)
    for line in lines:
        entry = json.loads(line)  # one JSON object per line
        assert {"time", "level", "logger", "message"} <= set(entry)
    everything = caplog.text + "\n".join(lines)
    assert secret not in everything
    assert secret.removeprefix("whsec_") not in everything


def test_log_format_json_writes_one_json_object_per_line():
    script = (
        "import django, logging; django.setup();"
        "logging.getLogger('deliveries.services').warning('delivery %s', 'dlv_1')"
    )
    env = dict(os.environ, LOG_FORMAT="json", DJANGO_SETTINGS_MODULE="webhooks_project.settings")

    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)

    (line,) = [line for line in done.stderr.splitlines() if line.strip()]
    entry = json.loads(line)
    assert entry["message"] == "delivery dlv_1"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "deliveries.services"
