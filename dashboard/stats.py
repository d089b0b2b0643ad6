"""Delivery health and statistics as the pages show them: rates as percentages with their grade
(``deliveries.rates``: the API's, the admin's and /metrics' definition), latencies to 0.1 ms."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from deliveries import rates, selectors
from deliveries.selectors import LATENCY_PLACES
from webhooks.models import Webhook

DAY = timedelta(hours=24)
WEEK = timedelta(days=7)


def health_summary(health: selectors.Health) -> dict[str, Any]:
    """Totals, attempts, success and failure rates with their grade, and last status, as the
    templates read them (``grade`` is a CSS class: green, amber, red; empty without attempts)."""
    return {
        "totals": health.totals,
        "total": health.total,
        "attempts": health.rates.attempts,
        "success_rate": rates.percent(health.rates.success_rate(rates.PERCENT_PLACES)),
        "failure_rate": rates.percent(health.rates.failure_rate(rates.PERCENT_PLACES)),
        "grade": health.rates.grade or "",
        "last_status": health.last_status,
    }


def list_health(webhooks: Sequence[Webhook]) -> dict[str, dict[str, Any]]:
    """The webhook list's health column of every row (last 24 h), read for the page at once."""
    health = selectors.webhooks_health(webhooks, window=DAY)
    return {webhook_id: health_summary(one) for webhook_id, one in health.items()}


def milliseconds(value: float | None) -> str | None:
    """``49.1``, ``40`` (not ``40.0``); None stays None."""
    return None if value is None else f"{value:.{LATENCY_PLACES}f}".removesuffix(".0")


def window_stats(webhook: Webhook, window: timedelta) -> dict[str, Any]:
    """The webhook page's statistics of ``window``: its health, with attempt latency."""
    stats = selectors.webhook_stats(webhook, window=window)
    return {
        **health_summary(stats),
        "p50": milliseconds(stats.latency_p50_ms),
        "p95": milliseconds(stats.latency_p95_ms),
        "filtered": stats.filtered,
        "has_filter": webhook.filter is not None,
    }
