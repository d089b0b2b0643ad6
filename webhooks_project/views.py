"""Project-level views: health, and JSON errors for API paths Django itself answers."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as html_server_error

from deliveries import metrics
from webhooks_project.errors import json_error
from webhooks_project.middleware import API_PREFIX
from webhooks_project.redis import get_redis

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def healthz(request: HttpRequest) -> JsonResponse:
    """Database, Redis and delivery lag; 503 when any is wrong, so a load balancer or an
    orchestrator can act on the status code alone."""
    body: dict[str, object] = {}
    healthy = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        body["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure is "unhealthy", reported
        body["database"] = f"error: {exc.__class__.__name__}"
        healthy = False
    try:
        get_redis().ping()
        body["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001
        body["redis"] = f"error: {exc.__class__.__name__}"
        healthy = False
    body["oldest_overdue_delivery_seconds"] = None
    body["max_lag_seconds"] = settings.WEBHOOK_HEALTH_MAX_LAG
    if body["database"] == "ok":
        try:
            lag = metrics.oldest_due_age_seconds()
        except Exception as exc:  # noqa: BLE001
            body["database"] = f"error: {exc.__class__.__name__}"
            healthy = False
        else:
            body["oldest_overdue_delivery_seconds"] = round(lag, 3)
            if lag > settings.WEBHOOK_HEALTH_MAX_LAG:
                healthy = False
                body["delivery_lag"] = "overdue deliveries are waiting longer than WEBHOOK_HEALTH_MAX_LAG"
    body = {"status": "ok" if healthy else "unhealthy", **body}
    return JsonResponse(body, status=200 if healthy else 503)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus metrics: for ``Authorization: Bearer <METRICS_TOKEN>``, or for anyone when
    METRICS_PUBLIC is on and no token is set. Neither configured: closed, saying how to open it."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            response = json_error(401, "/metrics requires Authorization: Bearer <METRICS_TOKEN>.")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not settings.METRICS_PUBLIC:
        return json_error(
            403,
            "/metrics is closed: set METRICS_TOKEN and scrape with Authorization: Bearer <token>, "
            "or set METRICS_PUBLIC=true to serve it to anyone who can reach it.",
        )
    return HttpResponse(metrics.prometheus_text(), content_type=PROMETHEUS_CONTENT_TYPE)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return json_error(404, "Not found.")
    return page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith(API_PREFIX):
        return json_error(500, "Internal server error.")
    return html_server_error(request)
