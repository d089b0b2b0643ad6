"""Delivery health and statistics as the pages show them: rates as percentages, latencies in whole ms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from deliveries import selectors
from webhooks.models import Webhook

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
# Shown for a rate of nothing (no delivery finished in the window).
NOTHING = "—"


def percent(rate: float | None) -> str:
    if rate is None:
        return NOTHING
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def health_summary(health: selectors.Health) -> dict[str, Any]:
    """Totals, success and failure rates and last status, as the templates read them."""
    rate = health.success_rate
    return {
        "totals": health.totals,
        "total": health.total,
        "success_rate": percent(rate),
        "failure_rate": percent(None if rate is None else 1 - rate),
        "last_status": health.last_status,
    }


def list_health(webhooks: Sequence[Webhook]) -> dict[str, dict[str, Any]]:
    """The webhook list's health column of every row (last 24 h), read for the page at once."""
    health = selectors.webhooks_health(webhooks, window=DAY)
    return {webhook_id: health_summary(one) for webhook_id, one in health.items()}


def window_stats(webhook: Webhook, window: timedelta) -> dict[str, Any]:
    """The webhook page's statistics of ``window``: its health, with attempt latency."""
    stats = selectors.webhook_stats(webhook, window=window)
    return {
        **health_summary(stats),
        "p50": None if stats.latency_p50_ms is None else round(stats.latency_p50_ms),
        "p95": None if stats.latency_p95_ms is None else round(stats.latency_p95_ms),
    }
