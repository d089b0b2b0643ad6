"""Delivery statistics as the pages show them: rates as percentages, latencies in whole ms."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from deliveries import selectors
from webhooks.models import Webhook

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
# Shown for a rate or a latency of nothing (no delivery finished, no attempt made).
NOTHING = "—"


def percent(rate: float | None) -> str:
    if rate is None:
        return NOTHING
    text = f"{rate * 100:.1f}".removesuffix(".0")
    return f"{text}%"


def window_stats(webhook: Webhook, window: timedelta) -> dict[str, Any]:
    """Totals, rates, latency and last status of ``webhook``'s deliveries in ``window``."""
    stats = selectors.webhook_stats(webhook, window=window)
    rate = stats.success_rate
    return {
        "totals": stats.totals,
        "total": sum(stats.totals.values()),
        "success_rate": percent(rate),
        "failure_rate": percent(None if rate is None else 1 - rate),
        "p50": None if stats.latency_p50_ms is None else round(stats.latency_p50_ms),
        "p95": None if stats.latency_p95_ms is None else round(stats.latency_p95_ms),
        "last_status": stats.last_status,
    }
